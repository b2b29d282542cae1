/**
 * Simple hostile clients for the HTTP listener (issue 6 A2, A7), used by the soak test
 * until the listener-hardening work's fuller set (unknown upgrades, stalled HTTP/2
 * streams, slowloris …) is merged; they have the same names and call shapes so the soak
 * test can switch its import.
 *
 * - {@link openUnknownUpgrades}: HTTP/1.1 requests with `Connection: Upgrade` for a
 *   protocol the server does not serve (websocket on `/`, h2c …), kept open by the client.
 * - {@link stalledH2Streams}: control-channel HTTP/2 streams (real Noise channel) whose
 *   request body never completes.
 */
import net from "node:net";
import type http2 from "node:http2";
import { randomBytes } from "node:crypto";
import { ControlClient, fetchServerKey, noiseKeyPair } from "@lattice/control-client";

/** A set of hostile connections; `answered` counts those the server replied to. */
export interface HostileSet {
  readonly opened: number;
  answered(): number;
  /** Server-side closes seen so far. */
  closedByServer(): number;
  /** Closes everything from the client side. */
  close(): void;
}

const UPGRADES = ["websocket", "h2c", "TLS/1.2", "lattice-control-protocol"] as const;

/** Opens `n` connections sending an upgrade request the server does not serve; keeps them open. */
export function openUnknownUpgrades(serverUrl: string, n: number): HostileSet {
  const u = new URL(serverUrl);
  const sockets: net.Socket[] = [];
  let answered = 0;
  let closed = 0;
  let closing = false;
  for (let i = 0; i < n; i++) {
    const s = net.connect(Number(u.port), u.hostname);
    sockets.push(s);
    let got = false;
    s.on("data", () => {
      if (!got) (got = true), answered++;
    });
    s.on("error", () => {});
    s.on("close", () => {
      if (!closing) closed++;
    });
    // (The control protocol on the wrong path and method is not the control upgrade either.)
    const protocol = UPGRADES[i % UPGRADES.length];
    s.write(
      `GET / HTTP/1.1\r\nHost: lattice\r\nConnection: Upgrade\r\nUpgrade: ${protocol}\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
  }
  return {
    opened: n,
    answered: () => answered,
    closedByServer: () => closed,
    close() {
      closing = true;
      for (const s of sockets) s.destroy();
    },
  };
}

/**
 * Opens `conns` control channels (fresh machine keys) with `streams` HTTP/2 requests each
 * whose body is started and never finished.
 */
export async function stalledH2Streams(serverUrl: string, conns: number, streams: number): Promise<HostileSet> {
  const serverPublic = await fetchServerKey(serverUrl);
  const clients: ControlClient[] = [];
  let answered = 0;
  let closed = 0;
  let closing = false;
  let opened = 0;
  for (let c = 0; c < conns; c++) {
    let client: ControlClient;
    try {
      client = await ControlClient.connect({ serverUrl, serverPublic, machineKey: noiseKeyPair(new Uint8Array(randomBytes(32))) });
    } catch {
      closed++;
      continue;
    }
    clients.push(client);
    client.session.on("error", () => {});
    for (let i = 0; i < streams; i++) {
      let st: http2.ClientHttp2Stream;
      try {
        st = client.session.request({ ":method": "POST", ":path": i % 2 ? "/machine/map" : "/machine/register", "content-type": "application/json" });
      } catch {
        closed++;
        continue;
      }
      opened++;
      st.on("response", () => answered++);
      st.on("error", () => {});
      st.on("data", () => {});
      st.on("close", () => {
        if (!closing) closed++;
      });
      st.write(`{"Version":100,"NodeKey":"nodekey:${"0".repeat(64)}","Hostinfo":{"Hostname":"`);
    }
  }
  return {
    get opened() {
      return opened;
    },
    answered: () => answered,
    closedByServer: () => closed,
    close() {
      closing = true;
      for (const c of clients) c.close();
    },
  };
}
