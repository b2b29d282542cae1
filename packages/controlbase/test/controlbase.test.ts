import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { randomBytes } from "node:crypto";
import {
  INITIATION_LENGTH,
  MAX_MESSAGE_SIZE,
  MAX_PLAINTEXT_SIZE,
  RESPONSE_LENGTH,
  clientHandshake,
  errorFrame,
  serverAccept,
} from "../src/controlbase.js";
import { NoiseError, noiseKeyPair } from "../src/noise.js";
import { MapFrameDecoder, MapFrameError, encodeMapFrame } from "../src/mapframe.js";

const kp = () => noiseKeyPair(new Uint8Array(randomBytes(32)));

function pair(version?: number) {
  const machine = kp();
  const server = kp();
  const hs = clientHandshake({ machineKey: machine, serverPublic: server.publicKey, ephemeral: kp(), version });
  const acc = serverAccept({ serverKey: server, ephemeral: kp(), initiation: hs.initiation, supportedVersions: [version ?? 1] });
  const done = hs.receive(acc.response)!;
  return { machine, server, hs, acc, client: done.transport, rest: done.rest };
}

describe("controlbase handshake (ts2021 layout)", () => {
  it("has the ts2021 frame sizes and header fields, and authenticates the machine key", () => {
    const { machine, server, hs, acc, client, rest } = pair(7);
    expect(hs.initiation).toHaveLength(INITIATION_LENGTH);
    expect([...hs.initiation.subarray(0, 5)]).toEqual([0, 7, 1, 0, 96]);
    expect(acc.response).toHaveLength(RESPONSE_LENGTH);
    expect([...acc.response.subarray(0, 3)]).toEqual([2, 0, 48]);
    expect(Buffer.from(acc.machinePublic).equals(Buffer.from(machine.publicKey))).toBe(true);
    expect(Buffer.from(client.peerStatic).equals(Buffer.from(server.publicKey))).toBe(true);
    expect(acc.version).toBe(7);
    expect(rest).toHaveLength(0);
    expect(Buffer.from(client.handshakeHash).equals(Buffer.from(acc.transport.handshakeHash))).toBe(true);
  });

  it("reassembles a response fed byte by byte and keeps trailing record bytes", () => {
    const machine = kp();
    const server = kp();
    const hs = clientHandshake({ machineKey: machine, serverPublic: server.publicKey, ephemeral: kp() });
    const acc = serverAccept({ serverKey: server, ephemeral: kp(), initiation: hs.initiation });
    const record = acc.transport.seal(new TextEncoder().encode("early"));
    const wire = Buffer.concat([acc.response, record]);
    let done = null;
    for (let i = 0; i < wire.length && !done; i++) done = hs.receive(wire.subarray(i, i + 1));
    // The response completes at byte 51; feed the rest as the record stream.
    const restBytes = Buffer.concat([done!.rest, wire.subarray(RESPONSE_LENGTH + done!.rest.length)]);
    expect(new TextDecoder().decode(done!.transport.open(restBytes)[0])).toBe("early");
  });

  it("rejects wrong sizes, types, versions and keys with NoiseError", () => {
    const server = kp();
    const hs = clientHandshake({ machineKey: kp(), serverPublic: server.publicKey, ephemeral: kp() });
    const bad = (init: Uint8Array, versions?: number[]) => () => serverAccept({ serverKey: server, ephemeral: kp(), initiation: init, supportedVersions: versions });
    expect(bad(hs.initiation.subarray(0, 100))).toThrow(/size/);
    const t = Uint8Array.from(hs.initiation);
    t[2] = 4;
    expect(bad(t)).toThrow(/type/);
    const l = Uint8Array.from(hs.initiation);
    l[4] = 95;
    expect(bad(l)).toThrow(/length/);
    expect(bad(hs.initiation, [2])).toThrow(/version/);
    const wrongKey = clientHandshake({ machineKey: kp(), serverPublic: kp().publicKey, ephemeral: kp() });
    expect(bad(wrongKey.initiation)).toThrow(NoiseError);
    // A version the client did not sign (prologue mismatch) fails authentication.
    const v = Uint8Array.from(hs.initiation);
    v[1] = 2;
    expect(bad(v, [1, 2])).toThrow(/authentication/);
  });

  it("surfaces a server error frame and an unexpected response type", () => {
    const hs = clientHandshake({ machineKey: kp(), serverPublic: kp().publicKey, ephemeral: kp() });
    expect(() => hs.receive(errorFrame("nope"))).toThrow(/server error: nope/);
    const hs2 = clientHandshake({ machineKey: kp(), serverPublic: kp().publicKey, ephemeral: kp() });
    expect(() => hs2.receive(new Uint8Array([9, 0, 48]))).toThrow(/type 9/);
  });
});

describe("controlbase records", () => {
  it("round-trips arbitrary data in arbitrary chunking, both directions (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 10_000 }), { maxLength: 6 }), fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 8 }), (msgs, cuts) => {
        const { client, acc } = pair();
        for (const [tx, rx] of [[client, acc.transport], [acc.transport, client]] as const) {
          const wire = Buffer.concat(msgs.map((m) => tx.seal(m)));
          const got: Uint8Array[] = [];
          let off = 0;
          let i = 0;
          while (off < wire.length) {
            const n = cuts[i++ % cuts.length];
            got.push(...rx.open(wire.subarray(off, off + n)));
            off += n;
          }
          expect(Buffer.concat(got).equals(Buffer.concat(msgs.map((m) => Buffer.from(m))))).toBe(true);
        }
      }),
      { numRuns: 40 },
    );
  });

  it("splits large writes into frames of at most 4096 bytes", () => {
    const { client, acc } = pair();
    const data = new Uint8Array(randomBytes(3 * MAX_PLAINTEXT_SIZE + 5));
    const wire = client.seal(data);
    let off = 0;
    let frames = 0;
    while (off < wire.length) {
      const len = (wire[off + 1] << 8) | wire[off + 2];
      expect(3 + len).toBeLessThanOrEqual(MAX_MESSAGE_SIZE);
      off += 3 + len;
      frames++;
    }
    expect(frames).toBe(4);
    expect(Buffer.concat(acc.transport.open(wire)).equals(Buffer.from(data))).toBe(true);
  });

  it("kills the channel on a forged, oversized, reordered or mistyped record", () => {
    const cases: Array<(w: Uint8Array[]) => Uint8Array> = [
      (w) => {
        const f = Uint8Array.from(w[0]);
        f[f.length - 1] ^= 1; // bad tag
        return f;
      },
      () => new Uint8Array([4, 0xff, 0xff]), // frame > 4096
      (w) => w[1], // replay/reorder: nonce mismatch
      (w) => Uint8Array.from([1, ...w[0].subarray(1)]), // wrong type
      () => new Uint8Array([4, 0, 3, 1, 2, 3]), // shorter than a tag
    ];
    for (const mk of cases) {
      const { client, acc } = pair();
      const w = [client.seal(new Uint8Array([1, 2, 3])), client.seal(new Uint8Array([4]))];
      expect(() => acc.transport.open(mk(w))).toThrow(NoiseError);
      // Dead afterwards, even for valid data.
      expect(() => acc.transport.open(w[0])).toThrow(NoiseError);
    }
  });
});

describe("map frames (u32 LE length + JSON)", () => {
  it("decodes messages split anywhere", () => {
    const msgs = [{ KeepAlive: true }, { Peers: [], Domain: "x" }, { PeersRemoved: [1, 2, 3] }];
    const wire = Buffer.concat(msgs.map(encodeMapFrame));
    expect(wire.readUInt32LE(0)).toBe(JSON.stringify(msgs[0]).length);
    for (let cut = 1; cut < wire.length; cut++) {
      const d = new MapFrameDecoder();
      expect([...d.push(wire.subarray(0, cut)), ...d.push(wire.subarray(cut))]).toEqual(msgs);
    }
  });
  it("refuses oversized frames and bad JSON", () => {
    const big = Buffer.alloc(4);
    big.writeUInt32LE(1000, 0);
    expect(() => new MapFrameDecoder(999).push(big)).toThrow(MapFrameError);
    const bad = Buffer.concat([Buffer.from([3, 0, 0, 0]), Buffer.from("{{{")]);
    expect(() => new MapFrameDecoder().push(bad)).toThrow(/not valid JSON/);
  });
});
