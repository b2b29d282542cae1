/**
 * `POST /derp/admit` (the `lattice-derp --verify-clients` contract, derp/README.md):
 * allows only current nodes, refuses hostile bodies with 4xx, and a real lattice-derp
 * relay with `--verify-clients --control-url` admits through a real lattice-control.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import net from "node:net";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { x25519PublicKey } from "@lattice/crypto";
import { connectDerp } from "@lattice/derp";
import { formatKey } from "@lattice/types";
import { startServer, TestNode, type ServerProc } from "./harness.js";

const random = (n: number): Uint8Array => Uint8Array.from(randomBytes(n));
const DERP_MAIN = resolve(dirname(fileURLToPath(import.meta.url)), "../../derp/dist/main.js");
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function control(args: string[] = []): Promise<ServerProc> {
  const s = await startServer({ args: ["--no-derp", ...args] });
  cleanups.push(() => s.stop());
  expect((await s.cli(["users", "create", "alice"])).code).toBe(0);
  return s;
}

async function join(s: ServerProc, name: string): Promise<Uint8Array> {
  const k = (await s.cli(["keys", "create", "--user", "alice", "--preapproved"])).stdout.trim();
  const priv = random(32);
  const n = await new TestNode(s.url, name).connect();
  n.nodeKey = formatKey("node", x25519PublicKey(priv));
  await n.register({ Auth: { AuthKey: k }, Hostinfo: { Hostname: name } });
  n.close();
  return priv;
}

const nodePublic = (priv: Uint8Array): string => `nodekey:${Buffer.from(x25519PublicKey(priv)).toString("hex")}`;

async function admit(s: ServerProc, body: unknown, init: RequestInit = {}): Promise<{ status: number; json: any }> {
  const r = await fetch(`${s.url}/derp/admit`, { method: "POST", headers: { "content-type": "application/json" }, body: typeof body === "string" ? body : JSON.stringify(body), ...init });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : null };
}

/** Sends raw bytes on a fresh TCP connection; resolves with what the server answered before closing. */
function raw(port: number, bytes: string | Buffer, waitMs = 15_000): Promise<string> {
  return new Promise((res) => {
    const sock = net.connect(port, "127.0.0.1");
    let out = "";
    const t = setTimeout(() => sock.destroy(), waitMs);
    sock.on("data", (c) => (out += c.toString()));
    sock.on("error", () => {});
    sock.on("close", () => {
      clearTimeout(t);
      res(out);
    });
    sock.write(bytes);
  });
}

describe("POST /derp/admit", () => {
  it("allows a current node; refuses a random key, an expired node and a deleted node", async () => {
    const s = await control();
    const a = await join(s, "adm-a");
    const b = await join(s, "adm-b");
    expect(await admit(s, { NodePublic: nodePublic(a), Source: "192.0.2.1" })).toEqual({ status: 200, json: { Allow: true } });
    expect(await admit(s, { NodePublic: nodePublic(a).toUpperCase().replace("NODEKEY:", "nodekey:") })).toEqual({ status: 200, json: { Allow: true } });
    expect(await admit(s, { NodePublic: nodePublic(random(32)), Source: "192.0.2.1" })).toEqual({ status: 200, json: { Allow: false } });
    expect((await s.cli(["nodes", "expire", "adm-a"])).code).toBe(0);
    expect((await admit(s, { NodePublic: nodePublic(a) })).json).toEqual({ Allow: false });
    expect((await s.cli(["nodes", "delete", "adm-b"])).code).toBe(0);
    expect((await admit(s, { NodePublic: nodePublic(b) })).json).toEqual({ Allow: false });
  });

  it("hostile client: bad JSON, bad key, oversized or over-announced body, wrong method, raw garbage → 4xx, nothing read past the limit; the server keeps answering", async () => {
    const s = await control();
    const a = await join(s, "adm-h");
    expect(await admit(s, "{not json")).toMatchObject({ status: 400, json: { error: { code: "bad_json" } } });
    expect(await admit(s, { NodePublic: "nodekey:xyz" })).toMatchObject({ status: 400, json: { error: { message: expect.stringMatching(/body\.NodePublic/) } } });
    expect(await admit(s, { Source: "1.2.3.4" })).toMatchObject({ status: 400, json: { error: { message: expect.stringMatching(/body\.NodePublic/) } } });
    expect(await admit(s, { NodePublic: nodePublic(a), Source: "x".repeat(10_000) })).toMatchObject({ status: 413 });
    expect((await fetch(`${s.url}/derp/admit`)).status).toBe(405);
    // A body that claims 1 MiB: refused without reading it all.
    const big = await raw(s.port, `POST /derp/admit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\nConnection: close\r\n\r\n{"NodePublic":`);
    expect(big).toMatch(/^HTTP\/1\.1 413/);
    // Garbage instead of HTTP.
    expect(await raw(s.port, Buffer.from(random(200)))).toMatch(/^(HTTP\/1\.1 400 |$)/);
    expect((await admit(s, { NodePublic: nodePublic(a) })).json).toEqual({ Allow: true });
  });
});

describe("lattice-derp --verify-clients against a real lattice-control", () => {
  it("a registered node's key is admitted, a random key refused", async () => {
    expect(existsSync(DERP_MAIN), `${DERP_MAIN}: run pnpm exec tsc -b`).toBe(true);
    const s = await control();
    const priv = await join(s, "verified");
    const proc: ChildProcess = spawn(process.execPath, [DERP_MAIN, "--listen", "127.0.0.1:0", "--http-port", "-1", "--stun-port", "-1", "--verify-clients", "--control-url", s.url], { stdio: ["ignore", "pipe", "pipe"] });
    const exited = new Promise<void>((r) => proc.once("exit", () => r()));
    cleanups.push(async () => {
      proc.kill("SIGTERM");
      await exited;
    });
    let log = "";
    const ready = await new Promise<any>((res, rej) => {
      const t = setTimeout(() => rej(new Error(`lattice-derp did not start:\n${log}`)), 20_000);
      proc.stderr!.on("data", (c: Buffer) => {
        log += c.toString();
        const line = log.split("\n").find((l) => l.includes("lattice-derp listening"));
        if (line) {
          clearTimeout(t);
          res(JSON.parse(line));
        }
      });
    });
    const url = `http://127.0.0.1:${ready.derpPort}`;
    const ok = await connectDerp(url, { privateKey: priv, random });
    cleanups.push(() => ok.close());
    expect(ok.serverInfo.version).toBe(2);
    await expect(connectDerp(url, { privateKey: random(32), random, timeoutMs: 5000 })).rejects.toThrow(/closed during login/);
    const st = await (await fetch(`${url}/debug/stats`)).json();
    expect(st.verify).toMatchObject({ allowed: 1, denied: 1, failed: 0 });
  });
});
