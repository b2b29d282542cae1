import { describe, expect, test } from "vitest";
import { chachaSeal, chachaOpen } from "@lattice/crypto";
import { ikInitialize, ikReadA, ikReadB, ikWriteA, ikWriteB, noiseKeyPair } from "../src/noise.js";

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "hex"));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

// The single Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s vector from cacophony
// (github.com/centromere/cacophony, vectors/cacophony.txt), values copied verbatim.
const V = {
  prologue: "4a6f686e2047616c74",
  psk: "54686973206973206d7920417573747269616e20706572737065637469766521",
  initStatic: "e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1",
  initEphemeral: "893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a",
  respStatic: "4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893",
  respEphemeral: "bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b",
  handshakeHash: "f5191b875290abcd41347ac3622d9679688a7e980229cb937ef748336cfde0e5",
  messages: [
    ["4c756477696720766f6e204d69736573", "ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c7944001e21de9f98ddd8e2ad57527207feb56253c9c94a9e496782ecfcb2a75fbcaf1b52948cc48daefe660c62119ab5000980c84831215f2441eba616548e832985464cf17e51ee93109008399a21f7e13f"],
    ["4d757272617920526f746862617264", "95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f144808843cb765f2caef0751b8f007572dab0322217755c0632f365717edbf34d33e87a"],
    ["462e20412e20486179656b", "8153ca9833bc3c1b91a7e66e5f4d4f5b59bf9e64c2f20d15f0bba7"],
    ["4361726c204d656e676572", "07af0c9c86e1b4e80f36b04ff7688d51141af3debd0332f0a705ef"],
    ["4a65616e2d426170746973746520536179", "6ab1467c0448cc78394494abaaf23afce0e234315d6e2624dcbfa8a21c1c4d073d"],
    ["457567656e2042f6686d20766f6e2042617765726b", "dfc346c0d2296ae6cf1acf6f12b8456a1dba228cf8d8b774aacf1c47fc53aa80ebc7a4c292"],
  ],
} as const;

describe("Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s (cacophony vector)", () => {
  test("initiator and responder reproduce every ciphertext, the handshake hash and the transport messages", () => {
    const name = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
    const iS = noiseKeyPair(hex(V.initStatic));
    const iE = noiseKeyPair(hex(V.initEphemeral));
    const rS = noiseKeyPair(hex(V.respStatic));
    const rE = noiseKeyPair(hex(V.respEphemeral));
    const psk = hex(V.psk);

    const ini = ikInitialize(name, hex(V.prologue), rS.publicKey);
    const res = ikInitialize(name, hex(V.prologue), rS.publicKey);

    const a = ikWriteA(ini, iS, iE, rS.publicKey, hex(V.messages[0][0]));
    expect(toHex(a)).toBe(V.messages[0][1]);
    const readA = ikReadA(res, rS, a);
    expect(readA).not.toBeNull();
    expect(readA!.rs).toEqual(iS.publicKey);
    expect(toHex(readA!.payload)).toBe(V.messages[0][0]);

    const b = ikWriteB(res, rE, readA!.re, readA!.rs, psk, hex(V.messages[1][0]));
    expect(toHex(b)).toBe(V.messages[1][1]);
    const readB = ikReadB(ini, iS, iE, b, psk);
    expect(readB).not.toBeNull();
    expect(toHex(readB!.payload)).toBe(V.messages[1][0]);

    expect(toHex(ini.h)).toBe(V.handshakeHash);
    expect(toHex(res.h)).toBe(V.handshakeHash);

    const [iSend, iRecv] = ini.split();
    const [rRecv, rSend] = res.split();
    expect(iSend).toEqual(rRecv);
    expect(iRecv).toEqual(rSend);
    const counters = [0, 0];
    for (let m = 2; m < V.messages.length; m++) {
      const fromInitiator = m % 2 === 0;
      const key = fromInitiator ? iSend : rSend;
      const n = counters[fromInitiator ? 0 : 1]++;
      const ct = chachaSeal(key, n, hex(V.messages[m][0]), new Uint8Array(0));
      expect(toHex(ct)).toBe(V.messages[m][1]);
      expect(toHex(chachaOpen(fromInitiator ? rRecv : iRecv, n, ct, new Uint8Array(0))!)).toBe(V.messages[m][0]);
    }
  });

  test("a wrong PSK or a flipped bit makes the reader fail with null", () => {
    const name = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
    const iS = noiseKeyPair(hex(V.initStatic));
    const iE = noiseKeyPair(hex(V.initEphemeral));
    const rS = noiseKeyPair(hex(V.respStatic));
    const rE = noiseKeyPair(hex(V.respEphemeral));
    const a = ikWriteA(ikInitialize(name, hex(V.prologue), rS.publicKey), iS, iE, rS.publicKey, new Uint8Array(3));
    const tampered = Uint8Array.from(a); tampered[40] ^= 1;
    expect(ikReadA(ikInitialize(name, hex(V.prologue), rS.publicKey), rS, tampered)).toBeNull();
    const wrongPrologue = ikInitialize(name, hex("00"), rS.publicKey);
    expect(ikReadA(wrongPrologue, rS, a)).toBeNull();

    const ini = ikInitialize(name, hex(V.prologue), rS.publicKey);
    const res = ikInitialize(name, hex(V.prologue), rS.publicKey);
    const a2 = ikWriteA(ini, iS, iE, rS.publicKey, new Uint8Array(0));
    const r = ikReadA(res, rS, a2)!;
    const b = ikWriteB(res, rE, r.re, r.rs, hex(V.psk), new Uint8Array(0));
    expect(ikReadB(ini, iS, iE, b, new Uint8Array(32))).toBeNull();
  });
});
