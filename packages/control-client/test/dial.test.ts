/**
 * dialControl against a minimal server built only from @lattice/controlbase (not the
 * coordination server): proves the client speaks the upgrade exactly as controlbase
 * defines it, and that the Noise channel carries bytes both ways.
 */
import { afterEach, describe, expect, it } from "vitest";
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { randomBytes } from "node:crypto";
import {
  CONTROL_HANDSHAKE_HEADER,
  CONTROL_UPGRADE_PATH,
  CONTROL_UPGRADE_PROTOCOL,
  CONTROL_UPGRADE_RESPONSE_HEAD,
  NoiseDuplex,
  decodeHandshakeHeader,
  noiseKeyPair,
  serverAccept,
} from "@lattice/controlbase";
import { ControlError, dialControl } from "../src/index.js";

const kp = () => noiseKeyPair(new Uint8Array(randomBytes(32)));
const servers: http.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

interface Seen {
  method?: string;
  url?: string;
  upgrade?: string;
  connection?: string;
  machinePublic?: Uint8Array;
}

/** An echo server: upgrade per controlbase, then echoes every plaintext chunk. `refuse` answers 400 instead. */
async function echoServer(serverKey = kp(), refuse = false): Promise<{ url: string; serverKey: ReturnType<typeof kp>; seen: Seen }> {
  const seen: Seen = {};
  const server = http.createServer((_req, res) => res.writeHead(404).end());
  server.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", () => {});
    Object.assign(seen, { method: req.method, url: req.url, upgrade: req.headers.upgrade, connection: req.headers.connection });
    if (refuse) {
      socket.end("HTTP/1.1 400 Bad Request\r\nContent-Length: 8\r\nConnection: close\r\n\r\nrefused\n");
      return;
    }
    const acc = serverAccept({ serverKey, ephemeral: kp(), initiation: decodeHandshakeHeader(req.headers[CONTROL_HANDSHAKE_HEADER.toLowerCase()]) });
    seen.machinePublic = acc.machinePublic;
    socket.write(CONTROL_UPGRADE_RESPONSE_HEAD);
    socket.write(acc.response);
    const conn = new NoiseDuplex(socket, acc.transport, { initial: new Uint8Array(head) });
    conn.on("error", () => {});
    conn.on("data", (chunk: Buffer) => conn.write(Buffer.concat([Buffer.from("echo:"), chunk])));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, serverKey, seen };
}

describe("dialControl speaks controlbase's upgrade", () => {
  it("sends POST /ts2021 with the shared headers, authenticates, and carries bytes both ways", async () => {
    const { url, serverKey, seen } = await echoServer();
    const machineKey = kp();
    const conn = await dialControl({ serverUrl: url, machineKey, serverPublic: serverKey.publicKey });
    try {
      expect(seen).toMatchObject({ method: "POST", url: CONTROL_UPGRADE_PATH, upgrade: CONTROL_UPGRADE_PROTOCOL, connection: "upgrade" });
      expect(Buffer.from(seen.machinePublic!).equals(Buffer.from(machineKey.publicKey))).toBe(true);
      expect(Buffer.from(conn.transport.peerStatic).equals(Buffer.from(serverKey.publicKey))).toBe(true);
      const reply = new Promise<string>((r) => conn.once("data", (c: Buffer) => r(c.toString())));
      conn.write("hello");
      expect(await reply).toBe("echo:hello");
    } finally {
      conn.destroy();
    }
  });

  it("rejects with ControlError upgrade_refused when the server answers 400", async () => {
    const { url, serverKey } = await echoServer(kp(), true);
    const err = await dialControl({ serverUrl: url, machineKey: kp(), serverPublic: serverKey.publicKey }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ControlError);
    expect(err).toMatchObject({ status: 400, code: "upgrade_refused" });
  });
});
