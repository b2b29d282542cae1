import { describe, expect, it } from "vitest";
import { encodeFrame, FrameType, keyEqual, PeerGoneReason, PeerPresentFlags, type DerpMessage, type MeshForwarder } from "../src/index.js";
import { Clock, newServer, Pair, random } from "./harness.js";

const packets = (p: Pair): Extract<DerpMessage, { kind: "packet" }>[] => p.messages.filter((m): m is Extract<DerpMessage, { kind: "packet" }> => m.kind === "packet");

describe("DERP server core", () => {
  it("logs a client in (ServerKey → ClientInfo → ServerInfo) and relays SendPacket as RecvPacket with the source key", () => {
    const server = newServer(new Clock());
    const a = new Pair(server);
    const b = new Pair(server);
    a.pump();
    b.pump();
    expect(a.client.loggedIn && b.client.loggedIn).toBe(true);
    expect(keyEqual(a.client.serverKey!, server.publicKey)).toBe(true);
    a.client.send(b.key, Uint8Array.of(9, 8, 7));
    a.pump();
    b.pump();
    const got = packets(b);
    expect(got).toHaveLength(1);
    expect(keyEqual(got[0]!.source, a.key)).toBe(true);
    expect([...got[0]!.data]).toEqual([9, 8, 7]);
    expect(server.stats.currentClients).toBe(2);
  });

  it("a full per-client queue drops the oldest packet and counts it (slow reader)", () => {
    const server = newServer(new Clock(), { queueDepth: 4 });
    const a = new Pair(server);
    const b = new Pair(server);
    a.pump();
    b.pump();
    b.stalled = true;
    for (let i = 0; i < 10; i++) a.client.send(b.key, Uint8Array.of(i));
    a.pump();
    expect(server.stats.dropQueueHead).toBe(6);
    b.stalled = false;
    b.pump();
    expect(packets(b).map((m) => m.data[0])).toEqual([6, 7, 8, 9]);
  });

  it("sending to an unknown key yields PeerGone(NotHere), rate-limited to a burst of 3", () => {
    const server = newServer(new Clock());
    const a = new Pair(server);
    a.pump();
    for (let i = 0; i < 10; i++) a.client.send(random(32), Uint8Array.of(1));
    a.pump();
    const gone = a.messages.filter((m) => m.kind === "peerGone");
    expect(gone).toHaveLength(3);
    expect(gone.every((m) => m.kind === "peerGone" && m.reason === PeerGoneReason.NotHere)).toBe(true);
    expect(server.stats.dropUnknownDest).toBe(10);
  });

  it("when a sender disconnects, its recipients get PeerGone(Disconnected)", () => {
    const server = newServer(new Clock());
    const a = new Pair(server);
    const b = new Pair(server);
    a.pump();
    b.pump();
    a.client.send(b.key, Uint8Array.of(1));
    a.pump();
    a.conn.closedByPeer();
    b.pump();
    const gone = b.messages.find((m) => m.kind === "peerGone");
    expect(gone && gone.kind === "peerGone" && keyEqual(gone.peer, a.key) && gone.reason === PeerGoneReason.Disconnected).toBe(true);
    expect(server.isConnected(a.key)).toBe(false);
  });

  it("Ping is answered with Pong carrying the same 8 bytes; NotePreferred counts home clients", () => {
    const server = newServer(new Clock());
    const a = new Pair(server);
    a.pump();
    a.client.ping(Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8));
    a.client.notePreferred(true);
    a.pump();
    const pong = a.messages.find((m) => m.kind === "pong");
    expect(pong && pong.kind === "pong" && [...pong.data]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(server.stats.homeClients).toBe(1);
    a.conn.closedByPeer();
    expect(server.stats.homeClients).toBe(0);
  });

  it("mesh-only frames (WatchConns, ForwardPacket, ClosePeer) from a client without the mesh key close it as FORBIDDEN", () => {
    for (const f of [encodeFrame(FrameType.WatchConns), encodeFrame(FrameType.ForwardPacket, new Uint8Array(70)), encodeFrame(FrameType.ClosePeer, new Uint8Array(32))]) {
      const server = newServer(new Clock(), { meshKey: random(32) });
      const a = new Pair(server);
      a.pump();
      a.conn.receive(f);
      expect(a.closedReason).toMatch(/ERR_DERP_FORBIDDEN/);
      expect(server.stats.protocolErrors.ERR_DERP_FORBIDDEN).toBe(1);
    }
  });

  it("a wrong mesh key is refused at login", () => {
    const server = newServer(new Clock(), { meshKey: random(32) });
    const m = new Pair(server, { meshKey: random(32) });
    m.pump();
    expect(m.closedReason).toMatch(/mesh key/);
    expect(server.stats.currentClients).toBe(0);
  });

  it("WatchConns floods PeerPresent for current clients, then streams joins and PeerGone; ForwardPacket delivers locally", () => {
    const meshKey = random(32);
    const server = newServer(new Clock(), { meshKey });
    const a = new Pair(server);
    a.pump();
    const w = new Pair(server, { meshKey });
    w.pump();
    w.client.watchConns();
    w.pump();
    const b = new Pair(server);
    b.pump();
    w.pump();
    const present = w.messages.filter((m) => m.kind === "peerPresent");
    expect(present.map((m) => m.kind === "peerPresent" && keyEqual(m.peer, a.key))).toContain(true);
    expect(present.some((m) => m.kind === "peerPresent" && keyEqual(m.peer, b.key) && m.flags === PeerPresentFlags.IsRegular && m.port === 1234)).toBe(true);
    const remote = random(32);
    w.client.forward(remote, a.key, Uint8Array.of(5));
    w.pump();
    a.pump();
    expect(packets(a).some((m) => keyEqual(m.source, remote))).toBe(true);
    expect(server.stats.packetsForwardedIn).toBe(1);
    b.conn.closedByPeer();
    w.pump();
    expect(w.messages.some((m) => m.kind === "peerGone" && keyEqual(m.peer, b.key))).toBe(true);
    w.client.closePeer(a.key);
    w.pump();
    expect(a.closedReason).toMatch(/ClosePeer/);
  });

  it("routes to a mesh forwarder when the destination is homed on another relay; PeerGone to its correspondents when the route goes", () => {
    const meshKey = random(32);
    const server = newServer(new Clock(), { meshKey });
    const a = new Pair(server);
    a.pump();
    const peerRelay = new Pair(server, { meshKey });
    peerRelay.pump();
    const sent: Uint8Array[] = [];
    const fwd: MeshForwarder = { forward: (_s, _d, p) => sent.push(p) };
    const remote = random(32);
    server.addMeshRoute(remote, fwd);
    a.client.send(remote, Uint8Array.of(42));
    a.pump();
    expect(sent.map((p) => p[0])).toEqual([42]);
    expect(server.stats.packetsForwardedOut).toBe(1);
    peerRelay.client.forward(remote, a.key, Uint8Array.of(7)); // remote → a arrives via the mesh
    peerRelay.pump();
    server.removeMeshForwarder(fwd);
    a.pump();
    expect(a.messages.some((m) => m.kind === "peerGone" && keyEqual(m.peer, remote) && m.reason === PeerGoneReason.Disconnected)).toBe(true);
    a.client.send(remote, Uint8Array.of(43));
    a.pump();
    expect(sent).toHaveLength(1);
    expect(server.stats.dropUnknownDest).toBe(1);
  });

  it("KeepAlive every keepAliveMs (+ up to 10% jitter) via nextDeadline/tick", () => {
    const clock = new Clock();
    const server = newServer(clock, { keepAliveMs: 1000 });
    const a = new Pair(server);
    a.pump();
    let n = 0;
    for (let i = 0; i < 50; i++) {
      const d = server.nextDeadline();
      expect(d).not.toBeNull();
      clock.t = Math.max(clock.t, d!);
      server.tick();
      a.pump();
      n = a.messages.filter((m) => m.kind === "keepAlive").length;
      if (clock.t > 1_000_000 + 5500) break;
    }
    expect(n).toBeGreaterThanOrEqual(4);
    expect(n).toBeLessThanOrEqual(6);
  });

  it("a connection that never logs in is closed at the login deadline; a blocked writer at the write timeout", () => {
    const clock = new Clock();
    const server = newServer(clock, { handshakeTimeoutMs: 10_000, writeTimeoutMs: 2_000 });
    const silent = new Pair(server);
    const slow = new Pair(server);
    slow.pump();
    slow.conn.setWriteBlocked(true);
    clock.t += 2_500;
    server.tick();
    expect(slow.closedReason).toMatch(/write timed out/);
    expect(silent.closedReason).toBeNull();
    clock.t += 8_000;
    server.tick();
    expect(silent.closedReason).toMatch(/login timed out/);
    expect(server.stats.closedHandshakeTimeout).toBe(1);
    expect(server.stats.closedWriteTimeout).toBe(1);
  });

  it("admission hook: frames wait until admitted; a rejected client is closed and never registered", () => {
    const asked: Uint8Array[] = [];
    const server = newServer(new Clock(), { admit: (_c, req) => asked.push(req.clientKey) });
    const a = new Pair(server);
    a.pump();
    expect(asked).toHaveLength(1);
    expect(a.client.loggedIn).toBe(false);
    a.client.notePreferred(true);
    a.pump();
    a.conn.admit(true);
    a.pump();
    expect(a.client.loggedIn).toBe(true);
    expect(server.stats.homeClients).toBe(1);
    const b = new Pair(server);
    b.pump();
    b.conn.admit(false, "not a node of this tailnet");
    expect(b.closedReason).toMatch(/not a node/);
    expect(server.isConnected(b.key)).toBe(false);
    expect(server.stats.admissionsRejected).toBe(1);
  });

  it("a second connection with the same key becomes active; the old one is told via Health", () => {
    const server = newServer(new Clock());
    const priv = random(32);
    const a1 = new Pair(server, { privateKey: priv });
    a1.pump();
    const a2 = new Pair(server, { privateKey: priv });
    a2.pump();
    a1.pump();
    expect(a1.messages.some((m) => m.kind === "health")).toBe(true);
    const b = new Pair(server);
    b.pump();
    b.client.send(a2.key, Uint8Array.of(1));
    b.pump();
    a1.pump();
    a2.pump();
    expect(packets(a2)).toHaveLength(1);
    expect(packets(a1)).toHaveLength(0);
    a2.conn.closedByPeer();
    expect(server.isConnected(a1.key)).toBe(true); // a1 is still connected with that key
  });

  it("server full: logins beyond maxClients are closed and counted", () => {
    const server = newServer(new Clock(), { maxClients: 2 });
    const ps = [new Pair(server), new Pair(server), new Pair(server)];
    for (const p of ps) p.pump();
    expect(ps[2]!.closedReason).toBe("server full");
    expect(server.stats.closedServerFull).toBe(1);
  });

  it("Restarting is broadcast with its two durations", () => {
    const server = newServer(new Clock());
    const a = new Pair(server);
    a.pump();
    server.broadcastRestarting(500, 30_000);
    a.pump();
    expect(a.messages.find((m) => m.kind === "restarting")).toEqual({ kind: "restarting", reconnectInMs: 500, tryForMs: 30_000 });
  });
});
