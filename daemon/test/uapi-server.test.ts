import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import type { DeviceSnapshot, DeviceUpdate } from "@lattice/wireguard";
import { UapiErrno, UapiError } from "@lattice/wireguard";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createLogger } from "../src/wg/log.js";
import { UapiServer, uapiSocketPath } from "../src/wg/uapi-server.js";

const log = createLogger("silent", "", { write: () => true });
const KEY = "e84b5a6d2717c1003a13b431570353dbaca9146cf150c5f8575680feba52027a";

/** A stand-in device handler: records updates, reports a fixed snapshot. */
class FakeHandler {
  updates: DeviceUpdate[] = [];
  snapshot(): DeviceSnapshot {
    return { privateKey: Buffer.from(KEY, "hex"), listenPort: 51820, fwmark: 0, peers: [] };
  }
  apply(u: DeviceUpdate): void {
    if (u.listenPort === 1) throw new UapiError(UapiErrno.PORT_IN_USE, "port 1 busy");
    this.updates.push(u);
  }
}

function talk(sockPath: string, request: string, replies = 1): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect(sockPath);
    let text = "";
    c.on("data", (d) => {
      text += d.toString();
      if (text.split("\n\n").length - 1 >= replies) {
        c.end();
        resolve(text);
      }
    });
    c.on("error", reject);
    c.on("end", () => resolve(text));
    c.write(request);
  });
}

describe("UAPI socket server", () => {
  let dir: string;
  let server: UapiServer | null = null;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "lwg-uapi-"));
  });
  afterEach(() => {
    server?.close();
    server = null;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("creates the directory and a 0700 socket, answers get and set", async () => {
    const h = new FakeHandler();
    const sock = uapiSocketPath("wgx", path.join(dir, "run"));
    server = await UapiServer.listen(sock, h, log);
    expect(fs.statSync(path.join(dir, "run")).mode & 0o777).toBe(0o755);
    const st = fs.statSync(sock);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o700);
    expect(await talk(sock, "get=1\n\n")).toBe(`private_key=${KEY}\nlisten_port=51820\nerrno=0\n\n`);
    expect(await talk(sock, "set=1\nlisten_port=4000\nfwmark=7\n\n")).toBe("errno=0\n\n");
    expect(h.updates).toHaveLength(1);
    expect(h.updates[0]!.listenPort).toBe(4000);
    expect(h.updates[0]!.fwmark).toBe(7);
  });

  it("serves several requests on one connection, in order", async () => {
    const h = new FakeHandler();
    const sock = path.join(dir, "a.sock");
    server = await UapiServer.listen(sock, h, log);
    const r = await talk(sock, "set=1\nlisten_port=1\n\nget=1\n\nset=1\nlisten_port=2\n\n", 3);
    expect(r).toBe(`errno=-98\n\nprivate_key=${KEY}\nlisten_port=51820\nerrno=0\n\nerrno=0\n\n`);
    expect(h.updates.map((u) => u.listenPort)).toEqual([2]);
  });

  it("replies EINVAL to a bad key and keeps nothing from that request", async () => {
    const h = new FakeHandler();
    const sock = path.join(dir, "b.sock");
    server = await UapiServer.listen(sock, h, log);
    expect(await talk(sock, "set=1\nlisten_port=5\nbogus_key=1\n\n")).toBe("errno=-22\n\n");
    expect(h.updates).toHaveLength(0);
  });

  it("hangs up on an unknown operation without a reply", async () => {
    const sock = path.join(dir, "c.sock");
    server = await UapiServer.listen(sock, new FakeHandler(), log);
    expect(await talk(sock, "frob=1\n\n")).toBe("");
  });

  it("replaces a stale socket file but refuses a live one", async () => {
    const sock = path.join(dir, "d.sock");
    // A stale socket: bound by a server that is gone without unlinking.
    const stale = net.createServer();
    await new Promise<void>((r) => stale.listen(sock, r));
    // Close it while keeping the file: move the file away and back around close().
    fs.renameSync(sock, `${sock}.keep`);
    await new Promise<void>((r) => stale.close(() => r()));
    fs.renameSync(`${sock}.keep`, sock);
    expect(fs.existsSync(sock)).toBe(true);
    server = await UapiServer.listen(sock, new FakeHandler(), log);
    expect(await talk(sock, "get=1\n\n")).toContain("errno=0");
    await expect(UapiServer.listen(sock, new FakeHandler(), log)).rejects.toMatchObject({ code: "ERR_UAPI_IN_USE" });
  });

  it("removes the socket on close and reports its deletion", async () => {
    const sock = path.join(dir, "e.sock");
    server = await UapiServer.listen(sock, new FakeHandler(), log);
    const gone = new Promise<void>((resolve) => server!.watchRemoval(resolve));
    fs.unlinkSync(sock);
    await gone;
    server.close();
    const s2 = await UapiServer.listen(sock, new FakeHandler(), log);
    s2.close();
    expect(fs.existsSync(sock)).toBe(false);
  });
});
