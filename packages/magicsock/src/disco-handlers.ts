/**
 * Received disco messages (wgengine/magicsock/magicsock.go handleDiscoMessage,
 * endpoint.go handlePongConnLocked / handleCallMeMaybe). Every failure on network input
 * is dropped and counted in `core.stats`; nothing here throws on packet content.
 */
import { keyEqual } from "@lattice/derp";
import { type CallMeMaybe, open, type Ping, type Pong, senderKey } from "@lattice/disco";
import { Endpoint } from "@lattice/netaddr";
import { BAD_DISCO_PER_SECOND, DERP_MAGIC_IP } from "./constants.js";
import type { MagicCore } from "./core.js";
import type { PeerState } from "./peer.js";

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");

/**
 * A disco packet (starts with `TS💬`) that arrived over UDP from `from`, or over DERP
 * region `region` from node key `derpSrc` (then `from` is null).
 */
export function handleDisco(core: MagicCore, data: Uint8Array, from: Endpoint | null, region: number, derpSrc: Uint8Array | null, now: number): void {
  const s = core.stats;
  const sender = senderKey(data);
  if (sender === null) {
    s.dropDiscoBad++;
    return;
  }
  const st = core.byDisco.get(hex(sender));
  if (st === undefined || st.discoKey === null) {
    s.dropDiscoUnknownSender++;
    return;
  }
  if (derpSrc !== null && !keyEqual(derpSrc, st.nodeKey)) {
    s.dropDiscoDerpKeyMismatch++;
    return;
  }
  if (now - st.badDiscoRefill >= 1000) {
    st.badDiscoRefill = now;
    st.badDiscoTokens = BAD_DISCO_PER_SECOND;
  }
  if (st.badDiscoTokens <= 0) {
    s.dropDiscoRateLimited++;
    return;
  }
  const r = open(data, core.o.discoPrivate, st.discoKey);
  if (!r.ok) {
    st.badDiscoTokens--;
    s.dropDiscoBad++;
    return;
  }
  const m = r.value.message;
  if (m.type === "ping") onPing(core, st, m, from, region, now);
  else if (m.type === "pong") onPong(core, st, m, from, now);
  else onCallMeMaybe(core, st, m, from, region, now);
}

function onPing(core: MagicCore, st: PeerState, m: Ping, from: Endpoint | null, region: number, now: number): void {
  core.stats.discoRecvPing++;
  if (m.nodeKey !== undefined && !keyEqual(m.nodeKey, st.nodeKey)) {
    core.stats.dropDiscoPingKeyMismatch++;
    return;
  }
  core.stats.discoSentPong++;
  if (from === null) {
    st.lastDerpRegion = region;
    core.sendDisco(st, { type: "pong", txId: m.txId, src: { ip: DERP_MAGIC_IP, port: region & 0xffff } }, region);
    return;
  }
  core.sendDisco(st, { type: "pong", txId: m.txId, src: { ip: from.ip.slice(), port: from.port } }, from);
  // A ping from an address we did not know is a new candidate (endpoint.go
  // addCandidateEndpoint); pinging it back at once completes hole punching from this side.
  const c = core.addCandidate(st, from, "ping");
  if (c !== null && c.lastPing === 0) core.ping(st, c, 0, now);
}

function onPong(core: MagicCore, st: PeerState, m: Pong, from: Endpoint | null, now: number): void {
  core.stats.discoRecvPong++;
  const tx = hex(m.txId);
  const sp = st.pings.get(tx);
  if (sp === undefined) {
    core.stats.dropDiscoPongUnknown++;
    return;
  }
  if (sp.cand === null) {
    st.pings.delete(tx);
    sp.onPong?.(now - sp.at, "", sp.derpRegion);
    return;
  }
  if (from === null || !from.sameAddrPort(sp.cand.ep)) {
    core.stats.dropDiscoPongWrongPath++;
    return;
  }
  st.pings.delete(tx);
  const latency = now - sp.at;
  if (st.cands.get(sp.cand.key) === sp.cand && st.notePong(sp.cand, latency, now)) {
    core.stats.pathChanges++;
    core.o.log.info({ peer: st.keyHex.slice(0, 16), addr: sp.cand.key, latencyMs: latency }, "magicsock: direct path");
  }
  sp.onPong?.(latency, sp.cand.key, 0);
}

function onCallMeMaybe(core: MagicCore, st: PeerState, m: CallMeMaybe, from: Endpoint | null, region: number, now: number): void {
  core.stats.discoRecvCallMeMaybe++;
  if (from !== null) {
    core.stats.dropDiscoCallMeMaybeUdp++;
    return;
  }
  st.lastDerpRegion = region;
  const listed = new Set<string>();
  for (const ap of m.endpoints) {
    if (ap.port === 0 || ap.ip.every((b) => b === 0)) continue;
    const ep = Endpoint.of(ap.ip, ap.port);
    const c = core.addCandidate(st, ep, "call-me-maybe");
    if (c !== null) listed.add(c.key);
  }
  // Endpoints an earlier CallMeMaybe listed and this one does not are gone.
  for (const [key, c] of [...st.cands]) if (c.source === "call-me-maybe" && !listed.has(key) && st.best !== c) st.cands.delete(key);
  core.candidatesChanged();
  // Reset ping timers and ping everything now: the peer is pinging us at the same time,
  // which opens both NATs (hole punching).
  for (const c of st.cands.values()) c.lastPing = 0;
  st.lastFullPing = now;
  for (const c of st.cands.values()) core.ping(st, c, 0, now);
}
