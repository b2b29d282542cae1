import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { randomBytes } from "node:crypto";
import { INITIATION_LENGTH, clientHandshake } from "../src/controlbase.js";
import { NoiseError, noiseKeyPair } from "../src/noise.js";
import {
  CONTROL_HANDSHAKE_HEADER,
  CONTROL_UPGRADE,
  CONTROL_UPGRADE_PATH,
  CONTROL_UPGRADE_PROTOCOL,
  CONTROL_UPGRADE_RESPONSE_HEAD,
  decodeHandshakeHeader,
  encodeHandshakeHeader,
  isControlUpgradeTarget,
} from "../src/upgrade.js";

const kp = () => noiseKeyPair(new Uint8Array(randomBytes(32)));
const FIXED_TEXTS = [
  "missing X-Lattice-Handshake header",
  "invalid X-Lattice-Handshake header (not base64)",
  "wrong handshake initiation size",
];

describe("control upgrade constants", () => {
  it("pins the wire values deployed nodes and servers speak", () => {
    expect(CONTROL_UPGRADE).toEqual({ path: "/ts2021", protocol: "lattice-control-protocol", handshakeHeader: "X-Lattice-Handshake" });
    expect([CONTROL_UPGRADE_PATH, CONTROL_UPGRADE_PROTOCOL, CONTROL_HANDSHAKE_HEADER]).toEqual([
      CONTROL_UPGRADE.path,
      CONTROL_UPGRADE.protocol,
      CONTROL_UPGRADE.handshakeHeader,
    ]);
    expect(CONTROL_UPGRADE_RESPONSE_HEAD).toBe(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: lattice-control-protocol\r\nConnection: upgrade\r\n\r\n",
    );
  });

  it("matches the control upgrade by exact path (query ignored) and case-insensitive Upgrade", () => {
    expect(isControlUpgradeTarget("/ts2021", "lattice-control-protocol")).toBe(true);
    expect(isControlUpgradeTarget("/ts2021?v=1", "Lattice-Control-Protocol")).toBe(true);
    expect(isControlUpgradeTarget("/ts2021/", "lattice-control-protocol")).toBe(false);
    expect(isControlUpgradeTarget("/", "lattice-control-protocol")).toBe(false);
    expect(isControlUpgradeTarget("/ts2021", "websocket")).toBe(false);
    expect(isControlUpgradeTarget("/ts2021", undefined)).toBe(false);
    expect(isControlUpgradeTarget(undefined, "lattice-control-protocol")).toBe(false);
  });
});

describe("handshake header codec", () => {
  it("round-trips a real initiation as standard padded base64", () => {
    const hs = clientHandshake({ machineKey: kp(), serverPublic: kp().publicKey, ephemeral: kp() });
    const value = encodeHandshakeHeader(hs.initiation);
    expect(value).toBe(Buffer.from(hs.initiation).toString("base64"));
    expect(value).toHaveLength(136);
    expect(value.endsWith("=")).toBe(true);
    expect([...decodeHandshakeHeader(value)]).toEqual([...hs.initiation]);
    // A view into a larger buffer encodes only its own bytes.
    const big = new Uint8Array(300);
    big.set(hs.initiation, 50);
    expect(encodeHandshakeHeader(big.subarray(50, 50 + INITIATION_LENGTH))).toBe(value);
  });

  it("refuses missing, non-base64 and wrong-size values with fixed texts", () => {
    const refuse = (v: string | string[] | undefined) => {
      try {
        decodeHandshakeHeader(v);
      } catch (e) {
        expect(e).toBeInstanceOf(NoiseError);
        return [(e as NoiseError).code, (e as NoiseError).message];
      }
      throw new Error("accepted");
    };
    expect(refuse(undefined)).toEqual(["ERR_CONTROL_HANDSHAKE_HEADER", FIXED_TEXTS[0]]);
    expect(refuse("")).toEqual(["ERR_CONTROL_HANDSHAKE_HEADER", FIXED_TEXTS[0]]);
    expect(refuse(["a", "b"])).toEqual(["ERR_CONTROL_HANDSHAKE_HEADER", FIXED_TEXTS[0]]);
    const b64url = Buffer.alloc(INITIATION_LENGTH, 0xfb).toString("base64url");
    expect(refuse(b64url)).toEqual(["ERR_CONTROL_HANDSHAKE_HEADER", FIXED_TEXTS[1]]);
    expect(refuse("AAAA, AAAA")).toEqual(["ERR_CONTROL_HANDSHAKE_HEADER", FIXED_TEXTS[1]]);
    expect(refuse(Buffer.alloc(INITIATION_LENGTH - 1).toString("base64"))).toEqual(["ERR_CONTROL_FRAME_SIZE", FIXED_TEXTS[2]]);
    expect(refuse(Buffer.alloc(INITIATION_LENGTH + 1).toString("base64"))).toEqual(["ERR_CONTROL_FRAME_SIZE", FIXED_TEXTS[2]]);
  });

  it("answers any hostile string with the initiation size or a fixed text, never echoing input", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 300 }), fc.uint8Array({ maxLength: 120 }).map((b) => Buffer.from(b).toString("base64"))), (v) => {
        try {
          expect(decodeHandshakeHeader(v)).toHaveLength(INITIATION_LENGTH);
        } catch (e) {
          expect(e).toBeInstanceOf(NoiseError);
          expect(FIXED_TEXTS).toContain((e as Error).message);
        }
      }),
      { numRuns: 500 },
    );
  });
});
