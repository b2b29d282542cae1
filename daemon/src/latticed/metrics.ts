/**
 * `GET /localapi/v0/metrics`: Prometheus text exposition format 0.0.4, written by hand
 * (a few counters; no dependency): packet filter verdicts by direction and reason, edge
 * drops, WireGuard device drops by reason, bytes per direction, peers, magicsock counters.
 */

/** The figures one scrape reads. */
export interface MetricsInput {
  filter: { in: { accepted: Record<string, number>; dropped: Record<string, number> }; out: { accepted: Record<string, number>; dropped: Record<string, number> } } | null;
  edge: Record<string, number>;
  deviceDrops: Record<string, number>;
  rxBytes: number;
  txBytes: number;
  peers: number;
  magicsock: Record<string, number>;
  /** MagicDNS counters (queries, answered, forwarded, drops); absent = not shown. */
  dns?: Record<string, number>;
  localapi: { requests: number; errors: Record<string, number>; rejectedConnections: number };
  /** The port-22 diversion's and the SSH server's counters (absent: no SSH service). */
  ssh?: { divert: Record<string, number>; server: Record<string, number> | null };
}

function esc(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function snake(s: string): string {
  return s.replace(/([a-z0-9])([A-Z])/g, "$1_$2").replace(/[^A-Za-z0-9_]/g, "_").toLowerCase();
}

/** Renders the exposition text. */
export function renderMetrics(m: MetricsInput): string {
  const out: string[] = [];
  const family = (name: string, type: "counter" | "gauge", help: string, rows: Array<[Record<string, string>, number]>) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, v] of rows) {
      const l = Object.entries(labels).map(([k, x]) => `${k}="${esc(x)}"`).join(",");
      out.push(`${name}${l ? `{${l}}` : ""} ${Number.isFinite(v) ? v : 0}`);
    }
  };
  const fr: Array<[Record<string, string>, number]> = [];
  if (m.filter) {
    for (const dir of ["in", "out"] as const) {
      for (const [r, v] of Object.entries(m.filter[dir].accepted)) fr.push([{ direction: dir, verdict: "accept", reason: r }, v]);
      for (const [r, v] of Object.entries(m.filter[dir].dropped)) fr.push([{ direction: dir, verdict: "drop", reason: r }, v]);
    }
  }
  family("latticed_filter_packets_total", "counter", "Packets seen by the packet filter, by direction, verdict and reason.", fr);
  family("latticed_edge_events_total", "counter", "Data path edge counters (drops, filter refusals, link changes).", Object.entries(m.edge).map(([k, v]) => [{ event: snake(k) }, v]));
  family("latticed_wireguard_drops_total", "counter", "Packets the WireGuard device dropped, by reason.", Object.entries(m.deviceDrops).map(([k, v]) => [{ reason: k }, v]));
  family("latticed_tunnel_bytes_total", "counter", "Bytes through WireGuard peers (sum over current peers).", [
    [{ direction: "rx" }, m.rxBytes],
    [{ direction: "tx" }, m.txBytes],
  ]);
  family("latticed_peers", "gauge", "Peers configured in the WireGuard device.", [[{}, m.peers]]);
  family("latticed_magicsock_events_total", "counter", "magicsock counters (DERP, disco, drops).", Object.entries(m.magicsock).map(([k, v]) => [{ event: snake(k) }, v]));
  if (m.dns) family("latticed_magicdns_events_total", "counter", "MagicDNS (100.100.100.100) queries, answers, forwards and drops.", Object.entries(m.dns).map(([k, v]) => [{ event: snake(k) }, v]));
  family("latticed_localapi_requests_total", "counter", "LocalAPI requests.", [[{}, m.localapi.requests]]);
  family("latticed_localapi_errors_total", "counter", "LocalAPI error answers by code.", Object.entries(m.localapi.errors).map(([k, v]) => [{ code: k }, v]));
  family("latticed_localapi_rejected_connections_total", "counter", "LocalAPI connections refused over the connection limit.", [[{}, m.localapi.rejectedConnections]]);
  if (m.ssh) {
    family("latticed_ssh_divert_events_total", "counter", "Port-22 diversion counters (rewrites, dropped direct packets, refused undiverted connections).", Object.entries(m.ssh.divert).map(([k, v]) => [{ event: snake(k) }, v]));
    family("latticed_ssh_server_events_total", "counter", "Embedded SSH server counters (accepted, refused, denied, revoked).", Object.entries(m.ssh.server ?? {}).map(([k, v]) => [{ event: snake(k) }, v]));
  }
  return out.join("\n") + "\n";
}
