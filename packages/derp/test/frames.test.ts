import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  DerpClient, DerpProtocolError, encodeClientInfo, encodeFrame, encodePeerPresent, encodeRestarting, encodeSendPacket, encodeServerKey,
  FrameDecoder, FrameType, MAGIC, MAX_PACKET_SIZE, MAX_SERVER_READ_FRAME, parseClientInfo, parseServerInfo, encodeServerInfo,
} from "../src/index.js";
import { x25519PublicKey } from "@lattice/crypto";
import { Clock, newServer, Pair, random } from "./harness.js";

describe("frame layout (derp.go)", () => {
  it("header is type byte + big-endian uint32 length; ServerKey is magic ‖ key", () => {
    const k = new Uint8Array(32).fill(7);
    const f = encodeServerKey(k);
    expect(Buffer.from(f.subarray(0, 5)).toString("hex")).toBe("0100000028");
    expect(Buffer.from(f.subarray(5, 13)).toString("utf8")).toBe("DERP🔑");
    expect(Buffer.from(MAGIC).toString("hex")).toBe("44455250f09f9491");
    expect(f.length).toBe(5 + 40);
  });

  it("PeerPresent is 51 bytes (derpserver peerPresentFrameLen): key, 16-byte IP, BE port, flags", () => {
    const f = encodePeerPresent(new Uint8Array(32), new Uint8Array(16).fill(1), 0x1234, 1);
    expect(f[0]).toBe(FrameType.PeerPresent);
    expect(f.length - 5).toBe(51);
    expect([f[5 + 48], f[5 + 49], f[5 + 50]]).toEqual([0x12, 0x34, 1]);
  });

  it("Restarting carries two BE uint32 millisecond values", () => {
    expect(Buffer.from(encodeRestarting(1000, 60000)).toString("hex")).toBe("1500000008000003e80000ea60");
  });

  it("rejects packets over MaxPacketSize (64 KiB) at encode time", () => {
    expect(() => encodeSendPacket(new Uint8Array(32), new Uint8Array(MAX_PACKET_SIZE + 1))).toThrow(/exceeds/);
    expect(encodeSendPacket(new Uint8Array(32), new Uint8Array(MAX_PACKET_SIZE)).length).toBe(5 + 32 + MAX_PACKET_SIZE);
  });
});

describe("FrameDecoder", () => {
  it("reassembles frames split at every byte boundary", () => {
    const frames = [encodeFrame(4, random(100)), encodeFrame(6), encodeFrame(0x12, random(8))];
    const stream = Buffer.concat(frames);
    for (let cut = 1; cut < 40; cut += 3) {
      const d = new FrameDecoder(1000);
      const got: number[] = [];
      for (let i = 0; i < stream.length; i += cut) {
        const r = d.push(stream.subarray(i, i + cut));
        expect(r.ok).toBe(true);
        if (r.ok) got.push(...r.frames.map((f) => f.type));
      }
      expect(got).toEqual([4, 6, 0x12]);
      expect(d.bufferedBytes).toBe(0);
    }
  });

  it("fails (typed, terminal) on a header announcing more than the limit, without buffering it", () => {
    const d = new FrameDecoder(MAX_SERVER_READ_FRAME);
    const r = d.push(Uint8Array.from([4, 0x7f, 0xff, 0xff, 0xff]));
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error).toBeInstanceOf(DerpProtocolError);
      expect(r.error.code).toBe("ERR_DERP_FRAME_TOO_LARGE");
    }
    expect(d.push(new Uint8Array(1)).ok).toBe(false);
    expect(d.bufferedBytes).toBe(0);
  });

  it("fuzz: any byte stream in any chunking either yields frames or a typed error, never throws, never buffers past the limit", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }), (chunks) => {
        const d = new FrameDecoder(256);
        for (const c of chunks) {
          const r = d.push(c);
          if (!r.ok) {
            expect(r.error).toBeInstanceOf(DerpProtocolError);
            return;
          }
          for (const f of r.frames) expect(f.payload.length).toBeLessThanOrEqual(256);
          expect(d.bufferedBytes).toBeLessThanOrEqual(256 + 5 + 300);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe("login boxes", () => {
  it("ClientInfo opens with the server key and carries version, CanAckPings and mesh key", () => {
    const serverPriv = random(32);
    const clientPriv = random(32);
    const mesh = random(32);
    const f = encodeClientInfo({ version: 2, canAckPings: true, isProber: false, meshKey: mesh }, x25519PublicKey(clientPriv), clientPriv, x25519PublicKey(serverPriv), random);
    const r = parseClientInfo(f.subarray(5), serverPriv);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.info.version).toBe(2);
    expect(r.value.info.canAckPings).toBe(true);
    expect(Buffer.from(r.value.info.meshKey!).equals(Buffer.from(mesh))).toBe(true);
    expect(Buffer.from(r.value.clientKey).equals(Buffer.from(x25519PublicKey(clientPriv)))).toBe(true);
  });

  it("ClientInfo sealed to another server, or claiming another client key, does not open", () => {
    const serverPriv = random(32);
    const clientPriv = random(32);
    const f = encodeClientInfo({ version: 2, canAckPings: true, isProber: false }, x25519PublicKey(clientPriv), clientPriv, x25519PublicKey(random(32)), random);
    expect(parseClientInfo(f.subarray(5), serverPriv).ok).toBe(false);
    const g = Uint8Array.from(encodeClientInfo({ version: 2, canAckPings: true, isProber: false }, x25519PublicKey(clientPriv), clientPriv, x25519PublicKey(serverPriv), random));
    g[5] ^= 1; // claim a different key
    const r = parseClientInfo(g.subarray(5), serverPriv);
    expect(!r.ok && r.error.code).toBe("ERR_DERP_BAD_HANDSHAKE");
  });

  it("ServerInfo round trip (version 2)", () => {
    const s = random(32);
    const c = random(32);
    const r = parseServerInfo(encodeServerInfo(x25519PublicKey(c), s, random).subarray(5), c, x25519PublicKey(s));
    expect(r.ok && r.value.version).toBe(2);
  });

  it("fuzz: ClientInfo/ServerInfo parsers never throw on garbage", () => {
    const s = random(32);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (b) => {
        const r = parseClientInfo(b, s);
        expect(r.ok).toBe(false);
        expect(parseServerInfo(b, s, x25519PublicKey(s)).ok).toBe(false);
      }),
      { numRuns: 1000 },
    );
  });
});

describe("server core fuzz", () => {
  it("a logged-in client sending arbitrary frames never makes the server throw; errors close only that connection", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 0x20 }), fc.uint8Array({ maxLength: 80 })), { maxLength: 30 }),
        (frames) => {
          const clock = new Clock();
          const server = newServer(clock, { meshKey: random(32) });
          const a = new Pair(server);
          const b = new Pair(server);
          a.pump();
          b.pump();
          for (const [t, p] of frames) a.conn.receive(encodeFrame(t, p));
          clock.t += 120_000;
          server.tick();
          b.client.send(a.key, Uint8Array.of(1, 2, 3));
          b.pump();
          expect(b.closedReason).toBeNull();
          expect(server.isConnected(b.key)).toBe(true);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("arbitrary bytes before login close the connection with a counted protocol error", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 5, maxLength: 200 }), (b) => {
        const server = newServer(new Clock());
        const p = new Pair(server);
        p.conn.receive(b);
        p.conn.receive(new Uint8Array(300_000).fill(0xff));
        expect(p.closedReason === null || server.stats.closedProtocolError === 1).toBe(true);
        expect(server.stats.currentClients).toBe(0);
      }),
      { numRuns: 500 },
    );
  });

  it("a DerpClient core fed garbage returns a typed error or skips, never throws", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 120 }), { maxLength: 10 }), (chunks) => {
        const c = new DerpClient({ privateKey: random(32), random });
        c.receive(encodeServerKey(random(32)));
        for (const ch of chunks) {
          const r = c.receive(ch);
          if (!r.ok) expect(r.error).toBeInstanceOf(DerpProtocolError);
        }
      }),
      { numRuns: 1000 },
    );
  });
});
