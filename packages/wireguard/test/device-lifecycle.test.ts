// Configuration changes, link up/down and key zeroing: no change leaves a stale timer that
// delays the next handshake, a rate-limited initiation always has a retry due, down/up
// follows wireguard-go, and no handshake or replaced secret stays in memory.
import { afterEach, describe, expect, test, vi } from "vitest";
import { Endpoint } from "../src/api.js";
import { clampScalar, x25519PublicKey, type SymmetricState } from "@lattice/crypto";
import { MAX_SAFE_COUNTER, REKEY_TIMEOUT, REKEY_TIMEOUT_JITTER_MAX, ZERO_KEY_MATERIAL_TIME } from "../src/constants.js";
import { Handshake } from "../src/peer.js";
import { Pair, established, peerOf, peerUpdate, seededRandom, staticSecretsOf } from "./harness.js";

const INIT = 1, DATA = 4;
const V4 = (address: string) => ({ address, family: 4 as const, bits: 32 });
const allZero = (b: Uint8Array | null | undefined): boolean => b != null && b.every((x) => x === 0);

afterEach(() => void vi.restoreAllMocks());

describe("no stale handshake timer after a configuration change", () => {
  test("private key change: the next packet handshakes at once and is answered (no REKEY_TIMEOUT wait)", () => {
    const net = established(); // A's initiation went out just now
    const newPriv = clampScalar(seededRandom("a-new-key")(32));
    // B learns A's new public key, then A switches (`wg set A private-key NEW`).
    net.b.dev.applyConfig({ replacePeers: true, peers: [peerUpdate(x25519PublicKey(newPriv), { allowedIps: [V4("192.168.4.1")] })] });
    net.a.dev.applyConfig({ privateKey: newPriv, replacePeers: false, peers: [] });
    net.send("a");
    net.pump(); // no time passes
    expect(net.b.received.length).toBe(2);
    net.send("b");
    net.pump();
    expect(net.a.received.length).toBe(1);
  });

  test("a rate-limited initiation arms its retry: the staged packet goes out when the limit ends", () => {
    const net = established();
    const t0 = net.clock.t;
    net.clock.t += 1000;
    // The session can no longer send (as after REJECT_AFTER_MESSAGES) 1 s after our last initiation.
    peerOf(net.a.dev, net.b.pub).keypairs.current!.sendNonce = MAX_SAFE_COUNTER;
    net.send("a");
    net.pump();
    expect(net.b.received.length).toBe(1); // within REKEY_TIMEOUT of the last initiation: staged
    expect(net.a.dev.nextDeadline()).toBeLessThanOrEqual(t0 + REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX);
    net.advance(REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX - 1000);
    expect(net.b.received.length).toBe(2);
  });

  test("endpoint change with an initiation in flight: a new one goes to the new address at once; the same endpoint again sends nothing", () => {
    const net = new Pair();
    const wrong = Endpoint.fromAddress("10.0.0.99", 51821)!;
    net.a.dev.applyConfig({ replacePeers: false, peers: [peerUpdate(net.b.pub, { updateOnly: true, endpoint: wrong })] });
    net.send("a");
    net.pump(); // the initiation went to 10.0.0.99: lost
    expect(net.count("a", INIT)).toBe(1);
    net.clock.t += 100;
    net.a.dev.applyConfig({ replacePeers: false, peers: [peerUpdate(net.b.pub, { updateOnly: true, endpoint: wrong })] });
    net.pump();
    expect(net.count("a", INIT)).toBe(1); // unchanged endpoint: no extra initiation
    net.a.dev.applyConfig({ replacePeers: false, peers: [peerUpdate(net.b.pub, { updateOnly: true, endpoint: net.b.ep })] });
    net.pump();
    expect(net.count("a", INIT)).toBe(2);
    expect(net.b.received.length).toBe(1); // the staged packet, without waiting for the retry
  });

  test("listen port change: a pending handshake restarts from the new port, sessions get a keepalive", () => {
    const pending = new Pair();
    pending.a.dev.applyConfig({ listenPort: 51820, replacePeers: false, peers: [] });
    pending.filter = () => false;
    pending.send("a");
    pending.pump();
    pending.clock.t += 100;
    pending.a.dev.applyConfig({ listenPort: 40000, replacePeers: false, peers: [] });
    pending.pump();
    expect(pending.count("a", INIT)).toBe(2);

    const net = established();
    net.a.dev.applyConfig({ listenPort: 51820, replacePeers: false, peers: [] }); // the first port: nothing to tell
    expect(net.a.dev.takeDatagrams()).toEqual([]);
    net.a.dev.applyConfig({ listenPort: 40000, replacePeers: false, peers: [] });
    expect(net.a.dev.takeDatagrams().map((d) => [d.data[0], d.data.length])).toEqual([[DATA, 32]]);
  });

  test("PSK change: the session in use goes on, the next handshake uses the new key", () => {
    const net = established({ psk: new Uint8Array(32).fill(1) });
    const psk2 = new Uint8Array(32).fill(2);
    net.a.dev.applyConfig({ replacePeers: false, peers: [peerUpdate(net.b.pub, { updateOnly: true, presharedKey: psk2 })] });
    net.b.dev.applyConfig({ replacePeers: false, peers: [peerUpdate(net.a.pub, { updateOnly: true, presharedKey: psk2 })] });
    for (let t = 0; t < 130; t++) {
      net.send("a");
      net.advance(1000);
    }
    expect(net.b.received.length).toBe(131);
    expect(net.count("a", INIT)).toBeGreaterThanOrEqual(2); // rekeyed after REKEY_AFTER_TIME (120 s)
    expect(net.b.dev.stats().drops.handshakeDecryptFailed).toBe(0);
  });
});

describe("up and down (the edge follows the link)", () => {
  test("down: nothing sent, arrivals dropped, sessions gone, config kept; up: the first packet handshakes at once", () => {
    const net = established();
    net.a.dev.setUp(false);
    expect(net.a.dev.isUp).toBe(false);
    net.send("a");
    expect(net.a.dev.takeDatagrams()).toEqual([]);
    net.send("b");
    net.pump();
    expect(net.a.received).toEqual([]);
    expect(net.a.dev.stats().drops.deviceDown).toBe(2);
    expect(net.a.dev.nextDeadline()).toBeUndefined();
    const p = net.a.dev.snapshot().peers[0]!;
    expect(p.endpoint).toEqual(net.b.ep);
    expect(p.allowedIps.length).toBe(2);
    expect(peerOf(net.a.dev, net.b.pub).keypairs.current).toBeNull();

    net.clock.t += 1000; // well within REKEY_TIMEOUT of the initiation before `down`
    net.a.dev.setUp(true);
    net.send("a");
    net.pump();
    expect(net.b.received.length).toBe(2);
  });

  test("up sends a keepalive (and so a handshake) to peers with a persistent keepalive", () => {
    const net = new Pair({});
    net.a.dev.setUp(false);
    net.a.dev.applyConfig({ replacePeers: false, peers: [peerUpdate(net.b.pub, { updateOnly: true, persistentKeepaliveInterval: 25 })] });
    net.pump();
    expect(net.log).toEqual([]);
    net.a.dev.setUp(true);
    net.pump();
    expect(net.count("a", INIT)).toBe(1);
    expect(net.count("a", DATA)).toBe(1);
  });
});

describe("key material is zeroed", () => {
  type Secrets = { sym: SymmetricState | null; eph: Uint8Array | null };
  /** Records the secrets every Handshake.clear() call had, before it ran. */
  function watchClears(): Secrets[] {
    const seen: Secrets[] = [];
    const orig = Handshake.prototype.clear;
    vi.spyOn(Handshake.prototype, "clear").mockImplementation(function (this: Handshake) {
      seen.push({ sym: this.sym, eph: this.ephemeral?.privateKey ?? null });
      orig.call(this);
    });
    return seen;
  }
  const zeroed = (s: Secrets): boolean => allZero(s.sym?.ck) && (s.sym?.k == null || allZero(s.sym.k)) && (s.eph === null || allZero(s.eph));

  test("a completed handshake leaves no chaining key or ephemeral private key behind (both sides)", () => {
    const seen = watchClears();
    established();
    const withSecrets = seen.filter((s) => s.sym !== null);
    expect(withSecrets.length).toBeGreaterThanOrEqual(2); // initiator and responder
    expect(withSecrets.filter((s) => s.eph !== null).length).toBeGreaterThanOrEqual(2);
    for (const s of withSecrets) expect(zeroed(s)).toBe(true);
  });

  test("an abandoned initiation (retransmitted) is zeroed, and so is the last one at the zero-key-material timer", () => {
    const net = new Pair();
    net.filter = () => false;
    net.send("a");
    net.pump();
    const hs = peerOf(net.a.dev, net.b.pub).handshake;
    const first = { sym: hs.sym, eph: hs.ephemeral!.privateKey };
    expect(zeroed(first)).toBe(false);
    net.advance(REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX + 1);
    expect(net.count("a", INIT)).toBe(2);
    expect(zeroed(first)).toBe(true);
    net.advance(120_000); // retries given up
    const last = { sym: hs.sym, eph: hs.ephemeral!.privateKey };
    expect(zeroed(last)).toBe(false);
    net.advance(ZERO_KEY_MATERIAL_TIME);
    expect(hs.state).toBe("zeroed");
    expect(zeroed(last)).toBe(true);
  });

  test("a replaced static private key and the DH results derived from it are zeroed; a removed peer's PSK too", () => {
    const net = established({ psk: new Uint8Array(32).fill(3) });
    const old = staticSecretsOf(net.a.dev);
    const peer = peerOf(net.a.dev, net.b.pub);
    const oldSS = peer.precomputedStaticStatic;
    expect(allZero(old.privateKey) || allZero(old.clamped) || allZero(oldSS)).toBe(false);
    net.a.dev.applyConfig({ privateKey: clampScalar(seededRandom("replacement")(32)), replacePeers: false, peers: [] });
    expect(allZero(old.privateKey)).toBe(true);
    expect(allZero(old.clamped)).toBe(true);
    expect(allZero(oldSS)).toBe(true);
    expect(allZero(staticSecretsOf(net.a.dev).privateKey)).toBe(false);
    expect(allZero(peer.precomputedStaticStatic)).toBe(false);
    const psk = peer.presharedKey;
    const ss = peer.precomputedStaticStatic;
    net.a.dev.applyConfig({ replacePeers: false, peers: [peerUpdate(net.b.pub, { remove: true })] });
    expect(allZero(psk)).toBe(true);
    expect(allZero(ss)).toBe(true);
  });
});
