/**
 * Mesh with other relays of the region (Tailscale's derper `--mesh-with`): for each peer
 * relay, keep a DERP client connection logged in with the shared mesh key and this
 * relay's own key, subscribe with WatchConns, and turn its PeerPresent / PeerGone into
 * routes in the local server core, so a packet for a node homed there goes out as
 * ForwardPacket on that connection. Reconnects with capped exponential backoff; a URL
 * that turns out to be this relay itself is dropped.
 */
import { randomBytes } from "node:crypto";
import { connectDerp, keyEqual, PeerPresentFlags, type DerpConnection, type DerpServer, type MeshForwarder } from "@lattice/derp";

interface Log {
  info(o: object, m: string): void;
  warn(o: object, m: string): void;
}

export interface MeshLink {
  readonly url: string;
  connected: boolean;
  forwardDrops: number;
}

export interface Mesh {
  readonly links: readonly MeshLink[];
  close(): void;
}

/** Starts mesh links to `urls` (self is detected by server key and skipped). */
export function startMesh(server: DerpServer, privateKey: Uint8Array, meshKey: Uint8Array, urls: readonly string[], log: Log, insecureSkipVerify: boolean): Mesh {
  let stopped = false;
  const links: MeshLink[] = [];
  const conns = new Set<DerpConnection>();
  const timers = new Set<NodeJS.Timeout>();

  for (const url of urls) {
    const link: MeshLink = { url, connected: false, forwardDrops: 0 };
    links.push(link);
    let backoff = 250;
    const retry = (): void => {
      if (stopped) return;
      const t = setTimeout(() => {
        timers.delete(t);
        void dial();
      }, backoff);
      timers.add(t);
      backoff = Math.min(backoff * 2, 30_000);
    };
    const dial = async (): Promise<void> => {
      let c: DerpConnection;
      try {
        c = await connectDerp(url, { privateKey, meshKey, random: (n) => Uint8Array.from(randomBytes(n)), insecureSkipVerify, appName: "lattice-derp-mesh" });
      } catch (e) {
        log.warn({ peer: url, err: (e as Error).message }, "mesh: cannot connect to peer relay; retrying");
        return retry();
      }
      if (stopped) return c.close();
      if (keyEqual(c.serverKey, server.publicKey)) {
        log.info({ peer: url }, "mesh: URL is this relay itself; skipping it");
        c.close();
        return;
      }
      conns.add(c);
      link.connected = true;
      backoff = 250;
      const fwd: MeshForwarder = {
        forward: (src, dst, pkt) => {
          if (!c.forward(src, dst, pkt)) link.forwardDrops++;
        },
      };
      c.onMessage((m) => {
        if (m.kind === "peerPresent") {
          if ((m.flags & PeerPresentFlags.IsMeshPeer) !== 0) return;
          server.addMeshRoute(m.peer, fwd);
        } else if (m.kind === "peerGone") server.removeMeshRoute(m.peer, fwd);
      });
      c.onClose((err) => {
        conns.delete(c);
        link.connected = false;
        server.removeMeshForwarder(fwd);
        if (!stopped) {
          log.warn({ peer: url, err: err?.message }, "mesh: connection to peer relay lost; reconnecting");
          retry();
        }
      });
      c.watchConns();
      log.info({ peer: url }, "mesh: connected to peer relay");
    };
    void dial();
  }
  return {
    links,
    close() {
      stopped = true;
      for (const t of timers) clearTimeout(t);
      for (const c of conns) c.close();
    },
  };
}
