import { describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { NoiseError, initiatorStart, noiseKeyPair, responderRead } from "../src/noise.js";

const hex = (s: string) => new Uint8Array(Buffer.from(s, "hex"));
const toHex = (b: Uint8Array) => Buffer.from(b).toString("hex");

// Cacophony test vector for Noise_IK_25519_ChaChaPoly_BLAKE2s (vectors/cacophony.txt,
// also in snow's tests/vectors/cacophony.txt).
const V = {
  prologue: "4a6f686e2047616c74",
  initStatic: "e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1",
  initEphemeral: "893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a",
  respStatic: "4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893",
  respEphemeral: "bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b",
  handshakeHash: "48f3cb8bc9319da4ba1e9933991b1c4ed4034f1f126a76d3a1fbcfd7f94248d4",
  messages: [
    ["4c756477696720766f6e204d69736573", "ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c79440b03ddc7aac5123d06a1b23b71670e32e76c28239a7ca4ac8f784de7e44c1adbfc6e83fef7352a58d9d56157400c0a737b1d171ce368229c7b752ac25b8faf4eca690f6d896f543be02c996ab2b86b76"],
    ["4d757272617920526f746862617264", "95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f144808843d9b5a8927f0ac9655ef76833bc7e5561f42e691ac8404efd6fbd6308b6a27c"],
    ["462e20412e20486179656b", "2c256ed08fcd08c2980f954ee4beaccb61c9581340f5dd2fd1cf3b"],
    ["4361726c204d656e676572", "d6033f70eee20945c7c9dba304e397ee3b284ff5e00fd9efb095d3"],
    ["4a65616e2d426170746973746520536179", "a9c068ca5d8babf72560652d8e851adbfac35c8a66e810d560863173e96adf4cfe"],
    ["457567656e2042f6686d20766f6e2042617765726b", "2a09d8f459e5927e40fdd2eddc99bdafb04e13a26f145cb5cfe9e6ba34c94331ebc17d5156"],
  ],
};

describe("Noise_IK_25519_ChaChaPoly_BLAKE2s (cacophony vector)", () => {
  it("reproduces every handshake and transport message and the handshake hash", () => {
    const initStatic = noiseKeyPair(hex(V.initStatic));
    const respStatic = noiseKeyPair(hex(V.respStatic));
    const init = initiatorStart({
      prologue: hex(V.prologue),
      localStatic: initStatic,
      localEphemeral: noiseKeyPair(hex(V.initEphemeral)),
      remoteStatic: respStatic.publicKey,
      payload: hex(V.messages[0][0]),
      endian: "little",
    });
    expect(toHex(init.message)).toBe(V.messages[0][1]);

    const resp = responderRead({
      prologue: hex(V.prologue),
      localStatic: respStatic,
      localEphemeral: noiseKeyPair(hex(V.respEphemeral)),
      message: init.message,
      endian: "little",
    });
    expect(toHex(resp.payload)).toBe(V.messages[0][0]);
    expect(toHex(resp.remoteStatic)).toBe(toHex(initStatic.publicKey));
    const r = resp.respond(hex(V.messages[1][0]));
    expect(toHex(r.message)).toBe(V.messages[1][1]);

    const i = init.readResponse(r.message);
    expect(toHex(i.payload)).toBe(V.messages[1][0]);
    expect(toHex(i.session.handshakeHash)).toBe(V.handshakeHash);
    expect(toHex(r.session.handshakeHash)).toBe(V.handshakeHash);

    // Transport: even indices initiator → responder, odd responder → initiator.
    for (let k = 2; k < V.messages.length; k++) {
      const [pt, ct] = V.messages[k];
      const [sender, receiver] = k % 2 === 0 ? [i.session, r.session] : [r.session, i.session];
      const sealed = sender.send.encrypt(hex(pt));
      expect(toHex(sealed)).toBe(ct);
      expect(toHex(receiver.recv.decrypt(sealed))).toBe(pt);
    }
  });
});

describe("Noise IK failures", () => {
  const mk = () => noiseKeyPair(new Uint8Array(randomBytes(32)));
  it("responder rejects a message 1 for another server key and tampered bytes", () => {
    const server = mk();
    const other = mk();
    const init = initiatorStart({ prologue: new Uint8Array(), localStatic: mk(), localEphemeral: mk(), remoteStatic: other.publicKey, endian: "big" });
    expect(() => responderRead({ prologue: new Uint8Array(), localStatic: server, localEphemeral: mk(), message: init.message, endian: "big" })).toThrow(NoiseError);
    const good = initiatorStart({ prologue: new Uint8Array(), localStatic: mk(), localEphemeral: mk(), remoteStatic: server.publicKey, endian: "big" });
    for (const pos of [0, 40, good.message.length - 1]) {
      const bad = Uint8Array.from(good.message);
      bad[pos] ^= 1;
      expect(() => responderRead({ prologue: new Uint8Array(), localStatic: server, localEphemeral: mk(), message: bad, endian: "big" })).toThrow(NoiseError);
    }
  });
  it("a different prologue fails the handshake", () => {
    const server = mk();
    const init = initiatorStart({ prologue: new Uint8Array([1]), localStatic: mk(), localEphemeral: mk(), remoteStatic: server.publicKey, endian: "big" });
    expect(() => responderRead({ prologue: new Uint8Array([2]), localStatic: server, localEphemeral: mk(), message: init.message, endian: "big" })).toThrow(/authentication/);
  });
  it("rejects a low-order ephemeral key", () => {
    const server = mk();
    const msg = new Uint8Array(96); // all-zero ephemeral → zero DH
    try {
      responderRead({ prologue: new Uint8Array(), localStatic: server, localEphemeral: mk(), message: msg, endian: "big" });
      expect.unreachable();
    } catch (e) {
      expect((e as NoiseError).code).toBe("ERR_NOISE_DH");
    }
  });
});
