/**
 * What the device does when a peer's timer expires (wireguard-go timers.go expired*):
 * driven by `tick()`, for the peers whose deadline in the heap is due — not a scan of
 * every peer.
 */
import { KEEPALIVE_TIMEOUT, MAX_TIMER_HANDSHAKES, ZERO_KEY_MATERIAL_TIME } from "./constants.js";
import type { DeviceCore } from "./core.js";
import type { Peer } from "./peer.js";
import { sendHandshakeInitiation, sendKeepalive } from "./send.js";

/** Runs every timer due at `c.now()`. */
export function runDueTimers(c: DeviceCore): void {
  c.fileDeadlines();
  const now = c.now();
  const due: Peer[] = [];
  for (let top = c.deadlines.peek(); top !== undefined && top.heapKey <= now; top = c.deadlines.peek()) {
    c.deadlines.remove(top);
    due.push(top);
  }
  for (const p of due) {
    if (c.peers.get(p.id) !== p) continue;
    for (const t of p.timers.takeExpired(now)) {
      if (c.peers.get(p.id) !== p) break;
      switch (t) {
        case "retransmitHandshake":
          expiredRetransmitHandshake(c, p, now);
          break;
        case "sendKeepalive":
          sendKeepalive(c, p);
          if (p.timers.needAnotherKeepalive) {
            p.timers.needAnotherKeepalive = false;
            p.timers.mod("sendKeepalive", now + KEEPALIVE_TIMEOUT);
          }
          break;
        case "newHandshake":
          // Data went out and nothing came back: the source address may be the trouble.
          c.clearEndpointSrc(p);
          sendHandshakeInitiation(c, p, false);
          break;
        case "zeroKeyMaterial":
          c.zeroAndFlush(p);
          break;
        case "persistentKeepalive":
          if (p.timers.persistentKeepaliveInterval > 0) sendKeepalive(c, p);
          break;
      }
    }
    // Re-filed by fileDeadlines() (takeExpired marked it changed), or filed now if not.
    if (!p.timersDirty && c.peers.get(p.id) === p) c.deadlines.set(p, p.timers.next());
  }
  c.fileDeadlines();
}

function expiredRetransmitHandshake(c: DeviceCore, p: Peer, now: number): void {
  if (p.timers.handshakeAttempts > MAX_TIMER_HANDSHAKES) {
    c.drop("handshakeGaveUp", p.staged.filter((x) => x.length > 0).length);
    p.staged = [];
    p.timers.del("sendKeepalive");
    if (!p.timers.pending("zeroKeyMaterial")) p.timers.mod("zeroKeyMaterial", now + ZERO_KEY_MATERIAL_TIME);
    return;
  }
  p.timers.handshakeAttempts++;
  // The reply may be lost because of the source address we send from: let the kernel choose.
  c.clearEndpointSrc(p);
  sendHandshakeInitiation(c, p, true);
}
