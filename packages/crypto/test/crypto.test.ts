import { describe, expect, test } from "vitest";
import {
  x25519, x25519PublicKey, x25519GenerateKeyPair, clampScalar, LowOrderPointError,
  chachaSeal, chachaOpen, chachaSealNonce, chachaOpenNonce, ChaChaPoly, xchachaSeal, xchachaOpen,
  blake2s256, blake2sKeyed, mac128, hmacBlake2s, kdf1, kdf2, kdf3, constantTimeEqual, isAllZero,
  boxSeal, boxOpen, CryptoError, SymmetricState,
} from "../src/index.js";

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ""), "hex"));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

describe("X25519", () => {
  test("RFC 7748 §5.2 single-shot vectors", () => {
    expect(toHex(x25519(
      hex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4"),
      hex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c"),
    ))).toBe("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552");
    expect(toHex(x25519(
      hex("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d"),
      hex("e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493"),
    ))).toBe("95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957");
  });

  test("RFC 7748 §5.2 iterated vector (1 and 1000 iterations)", () => {
    let k = hex("0900000000000000000000000000000000000000000000000000000000000000");
    let u = k;
    for (let i = 1; i <= 1000; i++) {
      const r = x25519(k, u);
      u = k;
      k = r;
      if (i === 1) expect(toHex(k)).toBe("422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079");
    }
    expect(toHex(k)).toBe("684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51");
  });

  test("RFC 7748 §6.1 Diffie-Hellman vector", () => {
    const aPriv = hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    const bPriv = hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
    const aPub = x25519PublicKey(aPriv);
    const bPub = x25519PublicKey(bPriv);
    expect(toHex(aPub)).toBe("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
    expect(toHex(bPub)).toBe("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    const shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
    expect(toHex(x25519(aPriv, bPub))).toBe(shared);
    expect(toHex(x25519(bPriv, aPub))).toBe(shared);
  });

  test("low-order points (all-zero shared secret) throw LowOrderPointError", () => {
    const priv = clampScalar(new Uint8Array(32).fill(7));
    const lowOrder = [
      "0000000000000000000000000000000000000000000000000000000000000000",
      "0100000000000000000000000000000000000000000000000000000000000000",
      "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
      "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
      "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    ];
    for (const p of lowOrder) {
      let err: unknown;
      try { x25519(priv, hex(p)); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(LowOrderPointError);
      expect((err as CryptoError).code).toBe("ERR_X25519_LOW_ORDER");
    }
  });

  test("generated key pairs agree and are clamped", () => {
    let seed = 1;
    const random = (n: number) => { const b = new Uint8Array(n); for (let i = 0; i < n; i++) b[i] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24; return b; };
    const a = x25519GenerateKeyPair(random);
    const b = x25519GenerateKeyPair(random);
    expect(a.privateKey[0] & 7).toBe(0);
    expect(a.privateKey[31] & 0xc0).toBe(0x40);
    expect(x25519(a.privateKey, b.publicKey)).toEqual(x25519(b.privateKey, a.publicKey));
  });

  test("wrong key length is a typed error", () => {
    expect(() => x25519(new Uint8Array(31), new Uint8Array(32))).toThrow(/32 bytes/);
  });
});

const SUNSCREEN = new TextEncoder().encode("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.");
const KEY_80 = hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
const AAD = hex("50515253c0c1c2c3c4c5c6c7");

describe("ChaCha20-Poly1305", () => {
  const ct = "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116";
  const tag = "1ae10b594f09e26a7e902ecbd0600691";
  const nonce = hex("070000004041424344454647");

  test("RFC 8439 §2.8.2 AEAD vector seals and opens", () => {
    expect(toHex(chachaSealNonce(KEY_80, nonce, SUNSCREEN, AAD))).toBe(ct + tag);
    expect(chachaOpenNonce(KEY_80, nonce, hex(ct + tag), AAD)).toEqual(SUNSCREEN);
  });

  test("tampered ciphertext, tag or AD fails to open (null, no throw)", () => {
    const bad = hex(ct + tag); bad[5] ^= 1;
    expect(chachaOpenNonce(KEY_80, nonce, bad, AAD)).toBeNull();
    const badTag = hex(ct + tag); badTag[badTag.length - 1] ^= 0x80;
    expect(chachaOpenNonce(KEY_80, nonce, badTag, AAD)).toBeNull();
    expect(chachaOpenNonce(KEY_80, nonce, hex(ct + tag), hex("00"))).toBeNull();
    expect(chachaOpenNonce(KEY_80, nonce, new Uint8Array(3), AAD)).toBeNull();
  });

  test("WireGuard counter nonce is 4 zero bytes + u64 LE (number and bigint agree)", () => {
    const key = new Uint8Array(32).fill(3);
    const c = 0x0102030405n;
    const sealed = chachaSeal(key, c, SUNSCREEN);
    expect(sealed).toEqual(chachaSealNonce(key, hex("000000000504030201000000"), SUNSCREEN, null));
    expect(chachaSeal(key, Number(c), SUNSCREEN)).toEqual(sealed);
    expect(chachaOpen(key, c, sealed)).toEqual(SUNSCREEN);
    expect(chachaOpen(key, c + 1n, sealed)).toBeNull();
  });

  test("ChaChaPoly sealInto/openInto work in place and match the one-shot functions", () => {
    const aead = new ChaChaPoly();
    const key = new Uint8Array(32).fill(9);
    const buf = new Uint8Array(SUNSCREEN.length + 16);
    buf.set(SUNSCREEN);
    const n = aead.sealInto(buf, key, 77, buf.subarray(0, SUNSCREEN.length), null);
    expect(n).toBe(SUNSCREEN.length + 16);
    expect(buf).toEqual(chachaSeal(key, 77, SUNSCREEN));
    const out = new Uint8Array(buf.length);
    expect(aead.openInto(out, key, 77, buf, null)).toBe(SUNSCREEN.length);
    expect(out.subarray(0, SUNSCREEN.length)).toEqual(SUNSCREEN);
    expect(aead.openInto(out, key, 78, buf, null)).toBe(-1);
  });
});

describe("XChaCha20-Poly1305", () => {
  test("draft-irtf-cfrg-xchacha-03 Appendix A.3.1 vector", () => {
    const iv = hex("404142434445464748494a4b4c4d4e4f5051525354555657");
    const ct = "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e";
    const tag = "c0875924c1c7987947deafd8780acf49";
    expect(toHex(xchachaSeal(KEY_80, iv, SUNSCREEN, AAD))).toBe(ct + tag);
    expect(xchachaOpen(KEY_80, iv, hex(ct + tag), AAD)).toEqual(SUNSCREEN);
    const bad = hex(ct + tag); bad[0] ^= 1;
    expect(xchachaOpen(KEY_80, iv, bad, AAD)).toBeNull();
  });
});

describe("BLAKE2s", () => {
  test('RFC 7693 Appendix B: BLAKE2s-256("abc")', () => {
    expect(toHex(blake2s256(new TextEncoder().encode("abc"))))
      .toBe("508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982");
    expect(toHex(blake2s256(new TextEncoder().encode("a"), new TextEncoder().encode("bc"))))
      .toBe("508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982");
  });

  test("BLAKE2 reference blake2s-kat.txt keyed vectors (key 00..1f; inputs empty, 00, 00..3f)", () => {
    const key = Uint8Array.from({ length: 32 }, (_, i) => i);
    expect(toHex(blake2sKeyed(key, 32))).toBe("48a8997da407876b3d79c0d92325ad3b89cbb754d86ab71aee047ad345fd2c49");
    expect(toHex(blake2sKeyed(key, 32, hex("00")))).toBe("40d15fee7c328830166ac3f918650f807e7e01e177258cdc0a39b11f598066f1");
    expect(toHex(blake2sKeyed(key, 32, Uint8Array.from({ length: 64 }, (_, i) => i))))
      .toBe("8975b0577fd35566d750b362b0897a26c399136df07bababbde6203ff2954ed4");
  });

  test("keyed BLAKE2s-128 (mac1 shape) matches CPython hashlib.blake2s(key=00..1f, digest_size=16)", () => {
    const key = Uint8Array.from({ length: 32 }, (_, i) => i);
    expect(toHex(mac128(key, new TextEncoder().encode("WireGuard mac1 test")))).toBe("ff9b8b06ed3ff3819f790b60ef4f1c1d");
  });

  test("HMAC-BLAKE2s matches CPython hmac.new(b'key', msg, hashlib.blake2s)", () => {
    expect(toHex(hmacBlake2s(new TextEncoder().encode("key"), new TextEncoder().encode("The quick brown fox"))))
      .toBe("8717096fc5e7ac53d11d990acd4380c9ddd7bd8da5d8b5bc29855e6c98a866a4");
  });

  test("KDF1/2/3 follow the WireGuard definition (T0 = HMAC(key, in); Ti = HMAC(T0, Ti-1 ‖ i))", () => {
    const key = new Uint8Array(32).fill(1);
    const input = new Uint8Array(32).fill(2);
    const t0 = hmacBlake2s(key, input);
    const t1 = hmacBlake2s(t0, hex("01"));
    const t2 = hmacBlake2s(t0, t1, hex("02"));
    const t3 = hmacBlake2s(t0, t2, hex("03"));
    expect(kdf1(key, input)).toEqual(t1);
    expect(kdf2(key, input)).toEqual([t1, t2]);
    expect(kdf3(key, input)).toEqual([t1, t2, t3]);
  });
});

describe("helpers and NaCl box", () => {
  test("constantTimeEqual and isAllZero", () => {
    expect(constantTimeEqual(hex("0102"), hex("0102"))).toBe(true);
    expect(constantTimeEqual(hex("0102"), hex("0103"))).toBe(false);
    expect(constantTimeEqual(hex("0102"), hex("01"))).toBe(false);
    expect(isAllZero(new Uint8Array(32))).toBe(true);
    expect(isAllZero(hex("0001"))).toBe(false);
  });

  test("box seal/open round trip; wrong key or tamper gives null", () => {
    const rnd = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + n) & 255);
    const a = x25519GenerateKeyPair(rnd);
    const b = x25519GenerateKeyPair((n) => rnd(n).map((x) => x ^ 0x55));
    const nonce = new Uint8Array(24).fill(4);
    const boxed = boxSeal(SUNSCREEN, nonce, b.publicKey, a.privateKey);
    expect(boxed.length).toBe(SUNSCREEN.length + 16);
    expect(boxOpen(boxed, nonce, a.publicKey, b.privateKey)).toEqual(SUNSCREEN);
    const bad = Uint8Array.from(boxed); bad[20] ^= 1;
    expect(boxOpen(bad, nonce, a.publicKey, b.privateKey)).toBeNull();
    expect(boxOpen(boxed, nonce, b.publicKey, b.privateKey)).toBeNull();
  });
});

describe("SymmetricState key hygiene", () => {
  const nonZero = (b: Uint8Array): boolean => b.some((x) => x !== 0);
  test("MixKey zeroes the chaining and cipher keys it replaces; zero() wipes the state", () => {
    const st = new SymmetricState(new TextEncoder().encode("Noise_test"));
    st.mixKey(new Uint8Array(32).fill(1));
    const ck1 = st.ck;
    const k1 = st.k!;
    st.mixKeyAndHash(new Uint8Array(32).fill(2));
    expect(ck1.every((x) => x === 0)).toBe(true);
    expect(k1.every((x) => x === 0)).toBe(true);
    expect(nonZero(st.ck)).toBe(true);
    const ck2 = st.ck;
    st.zero();
    expect(ck2.every((x) => x === 0)).toBe(true);
    expect(st.k).toBeNull();
  });

  test("a clone is independent: mixing or zeroing it leaves the original usable", () => {
    const st = new SymmetricState(new TextEncoder().encode("Noise_test"));
    st.mixKey(new Uint8Array(32).fill(1));
    const ck = Uint8Array.from(st.ck);
    const c = st.clone();
    c.mixKey(new Uint8Array(32).fill(9));
    c.zero();
    expect(st.ck).toEqual(ck);
    expect(nonZero(st.k!)).toBe(true);
  });
});
