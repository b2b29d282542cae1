/**
 * Property tests (fast-check) of the DERP receive paths on hostile input: the frame
 * decoder, the login parsers, and the server and client cores never throw on bytes from
 * the network; every rejection is a DerpProtocolError with a known code, and the server
 * counts it and closes only that connection.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  DerpClient,
  DerpProtocolError,
  encodeFrame,
  FrameDecoder,
  FrameType,
  MAGIC,
  MAX_SERVER_READ_FRAME,
  parseClientInfo,
  parseServerInfo,
  parseServerKey,
} from "../src/index.js";
import { Clock, newServer, Pair, random } from "./harness.js";

const CODES = new Set(["ERR_DERP_FRAME_TOO_LARGE", "ERR_DERP_BAD_FRAME", "ERR_DERP_BAD_HANDSHAKE", "ERR_DERP_FORBIDDEN", "ERR_DERP_BUFFER_LIMIT"]);
const typed = (e: unknown): boolean => e instanceof DerpProtocolError && CODES.has(e.code);

/** Byte chunks: raw garbage, or well-framed frames of any type (known and unknown) with garbage payloads. */
const frameArb = fc.tuple(fc.integer({ min: 0, max: 0x20 }), fc.uint8Array({ maxLength: 300 })).map(([t, p]) => encodeFrame(t, p));
const chunk = fc.oneof(fc.uint8Array({ maxLength: 400 }), frameArb);
const stream = fc.array(chunk, { maxLength: 12 });

describe("DERP parsers under fuzzing (fast-check)", () => {
  it("FrameDecoder: any bytes, split anywhere → frames or one typed error, never a throw", () => {
    fc.assert(
      fc.property(stream, fc.integer({ min: 1, max: 64 }), (chunks, cut) => {
        const d = new FrameDecoder(MAX_SERVER_READ_FRAME);
        for (const c of chunks) {
          for (let i = 0; i < c.length || i === 0; i += cut) {
            const r = d.push(c.subarray(i, i + cut));
            if (!r.ok) {
              expect(typed(r.error)).toBe(true);
              return;
            }
            for (const f of r.frames) expect(f.payload.length).toBeLessThanOrEqual(MAX_SERVER_READ_FRAME);
          }
        }
      }),
      { numRuns: 400 },
    );
  });

  it("parseServerKey / parseClientInfo / parseServerInfo: garbage → typed error, never a throw", () => {
    const serverPriv = random(32);
    const clientPriv = random(32);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.boolean(), (b, withMagic) => {
        const payload = withMagic ? Uint8Array.from([...MAGIC, ...b]) : b;
        for (const r of [parseServerKey(payload), parseClientInfo(payload, serverPriv), parseServerInfo(payload, clientPriv, random(32))]) {
          if (!r.ok) expect(typed(r.error)).toBe(true);
        }
      }),
      { numRuns: 500 },
    );
  });

  it("server core: garbage before login closes only that connection with a counted, typed reason", () => {
    fc.assert(
      fc.property(stream, (chunks) => {
        const server = newServer(new Clock());
        const good = new Pair(server);
        good.pump();
        const closed: string[] = [];
        const conn = server.newConn({ ip16: new Uint8Array(16), port: 1 }, { wake: () => {}, close: (r) => closed.push(r) });
        for (const c of chunks) conn.receive(c);
        for (const [code, n] of Object.entries(server.stats.protocolErrors)) {
          expect(CODES.has(code)).toBe(true);
          expect(n).toBeGreaterThan(0);
        }
        expect(closed.length).toBeLessThanOrEqual(1);
        expect(good.client.loggedIn).toBe(true);
        expect(server.isConnected(good.key)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it("server core: a logged-in client sending garbage frames never throws; other clients keep being served", () => {
    fc.assert(
      fc.property(stream, (chunks) => {
        const server = newServer(new Clock());
        const a = new Pair(server);
        const b = new Pair(server);
        a.pump();
        b.pump();
        for (const c of chunks) a.conn.receive(c);
        for (let f = a.conn.pull(); f !== null; f = a.conn.pull()) void f;
        const c2 = new Pair(server);
        c2.pump();
        c2.client.send(b.key, Uint8Array.of(42));
        c2.pump();
        b.pump();
        expect(b.messages.some((m) => m.kind === "packet" && m.data[0] === 42)).toBe(true);
        for (const code of Object.keys(server.stats.protocolErrors)) expect(CODES.has(code)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it("client core: garbage from a server → typed error (sticky), never a throw", () => {
    fc.assert(
      fc.property(fc.boolean(), stream, (loggedInFirst, chunks) => {
        const server = newServer(new Clock());
        const p = new Pair(server);
        if (loggedInFirst) p.pump();
        const c: DerpClient = p.client;
        let failed = false;
        for (const ch of chunks) {
          const r = c.receive(ch);
          if (!r.ok) {
            expect(typed(r.error)).toBe(true);
            failed = true;
          } else expect(failed).toBe(false);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("a frame announcing more than the limit is refused from its header (ERR_DERP_FRAME_TOO_LARGE), without waiting for the body", () => {
    const d = new FrameDecoder(1024);
    const hdr = Uint8Array.of(FrameType.SendPacket, 0x7f, 0xff, 0xff, 0xff);
    const r = d.push(hdr);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe("ERR_DERP_FRAME_TOO_LARGE");
  });
});
