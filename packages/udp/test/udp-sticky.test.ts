/**
 * Sticky sources (IP_PKTINFO / IPV6_PKTINFO) on real sockets: two private network
 * namespaces joined by a veth pair; the server's side has two addresses of each family.
 * A datagram sent to either address is answered from that address (as seen by the
 * client), while the same reply without the source comes from the kernel's default; and
 * when the source address is removed, the reply falls over to the kernel's choice.
 * Root only; runs the built package (dist/) in child processes inside the namespaces.
 */
import { execFileSync, spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { existsSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const isRoot = process.getuid?.() === 0;
const nsA = `lstA-${process.pid}`;
const nsB = `lstB-${process.pid}`;
const ip = (...args: string[]): string => execFileSync("ip", args, { encoding: "utf8" });
const fixture = fileURLToPath(new URL("./fixtures/sticky-peer.mjs", import.meta.url));
const dist = fileURLToPath(new URL("../dist/index.js", import.meta.url));

interface Line {
  event: string;
  port?: number;
  text?: string;
  n?: number;
  srcCleared?: number;
  from?: { address: string; port: number; family: number; src?: { address: string; ifindex: number } };
}

/** A sticky-peer.mjs child in a namespace, with a line-by-line JSON reader. */
class Peer {
  private readonly lines: Line[] = [];
  private wake: (() => void) | null = null;
  readonly proc: ChildProcessWithoutNullStreams;
  constructor(ns: string, role: "server" | "client") {
    this.proc = spawn("ip", ["netns", "exec", ns, process.execPath, fixture, role]);
    createInterface({ input: this.proc.stdout }).on("line", (l) => {
      this.lines.push(JSON.parse(l) as Line);
      this.wake?.();
    });
    this.proc.stderr.on("data", (d: Buffer) => process.stderr.write(d));
  }
  cmd(line: string): void {
    this.proc.stdin.write(`${line}\n`);
  }
  async next(event: string, ms = 3_000): Promise<Line> {
    const end = Date.now() + ms;
    for (;;) {
      const i = this.lines.findIndex((l) => l.event === event);
      if (i >= 0) return this.lines.splice(i, 1)[0]!;
      const left = end - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${event}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.wake = () => {
          clearTimeout(t);
          r();
        };
      });
    }
  }
  close(): void {
    this.proc.kill();
  }
}

describe.runIf(isRoot)("BatchUdpSocket sticky source (root, private netns)", () => {
  let server: Peer;
  let client: Peer;
  let port = 0;

  beforeAll(async () => {
    if (!existsSync(dist)) throw new Error(`${dist} missing: run \`npx tsc -b packages/tun\` first`);
    ip("netns", "add", nsA);
    ip("netns", "add", nsB);
    ip("link", "add", "vsa", "netns", nsA, "type", "veth", "peer", "name", "vsb", "netns", nsB);
    for (const [ns, dev, addrs] of [
      [nsA, "vsa", ["10.77.0.1/24", "10.77.0.2/24", "fd00:77::1/64", "fd00:77::2/64"]],
      [nsB, "vsb", ["10.77.0.3/24", "fd00:77::3/64"]],
    ] as const) {
      for (const a of addrs) ip("-n", ns, "addr", "add", a, "dev", dev, ...(a.includes(":") ? ["nodad"] : []));
      ip("-n", ns, "link", "set", dev, "up");
      ip("-n", ns, "link", "set", "lo", "up");
    }
    server = new Peer(nsA, "server");
    client = new Peer(nsB, "client");
    port = (await server.next("ready", 10_000)).port!;
    await client.next("ready", 10_000);
  }, 30_000);

  afterAll(() => {
    server?.close();
    client?.close();
    spawnSync("ip", ["netns", "del", nsA]);
    spawnSync("ip", ["netns", "del", nsB]);
  });

  async function ask(family: 4 | 6, address: string, text: string): Promise<NonNullable<Line["from"]>> {
    client.cmd(`send ${family} ${address} ${port} ${text}`);
    const r = await client.next("reply");
    expect(r.text).toBe(`re:${text}`);
    return r.from!;
  }

  it("answers from the address the datagram was sent to, the kernel's default without the source", async () => {
    for (const [family, a1, a2] of [
      [4, "10.77.0.1", "10.77.0.2"],
      [6, "fd00:77::1", "fd00:77::2"],
    ] as const) {
      for (const target of [a1, a2, a1]) {
        const from = await ask(family, target, "hello");
        expect(from.address).toBe(target);
        expect(from.port).toBe(port);
        expect(from.src?.address).toBe(family === 4 ? "10.77.0.3" : "fd00:77::3"); // the client's local side
      }
      // Control: the same replies without the source come from one default address, so
      // one of the two targets is NOT answered from itself (the check above can fail).
      const d1 = (await ask(family, a1, "nosrc")).address;
      const d2 = (await ask(family, a2, "nosrc")).address;
      expect(d1).toBe(d2);
      expect([a1, a2]).toContain(d1);
    }
  });

  it("falls over to the kernel's source when the sticky source address is removed", async () => {
    for (const [family, keep, gone, bits] of [
      [4, "10.77.0.1", "10.77.0.2", 24],
      [6, "fd00:77::1", "fd00:77::2", 64],
    ] as const) {
      expect((await ask(family, gone, "hello")).address).toBe(gone); // server's last endpoint: src = gone
      const before = (await (async () => (server.cmd("resend probe"), server.next("resent")))()).srcCleared!;
      expect((await client.next("reply")).from!.address).toBe(gone);
      ip("-n", nsA, "addr", "del", `${gone}/${bits}`, "dev", "vsa");
      server.cmd("resend after");
      const r = await server.next("resent");
      expect(r.n).toBe(1); // sent, from another source
      expect(r.srcCleared).toBe(before + 1);
      const got = await client.next("reply");
      expect(got.text).toBe("re:after");
      expect(got.from!.address).toBe(keep);
      // The refused source is forgotten for that endpoint: no second refusal.
      server.cmd("resend again");
      expect((await server.next("resent")).srcCleared).toBe(before + 1);
      expect((await client.next("reply")).from!.address).toBe(keep);
      ip("-n", nsA, "addr", "add", `${gone}/${bits}`, "dev", "vsa", ...(family === 6 ? ["nodad"] : []));
    }
  });
});
