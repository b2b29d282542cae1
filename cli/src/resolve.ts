/**
 * Finding a node of the status by what a user types: a tailnet IP, its MagicDNS name (full
 * or first label, any case, with or without the trailing dot) or its HostName. Tailscale's
 * CLI also falls back to the system resolver; Lattice does not (a name not in the netmap is
 * an error), so `ping`/`nc`/`ip` never leave the tailnet by accident.
 */
import { formatIp, parseIp } from "@lattice/netaddr";
import { CliError } from "./errors.js";
import type { PeerStatus, Status } from "./types.js";

/** Canonical text of an IP (RFC 5952 for IPv6), or null when `text` is not an IP. */
export function canonicalIp(text: string): string | null {
  const p = parseIp(text);
  return p ? formatIp(p.bytes) : null;
}

/** IPv4 sorts before IPv6, then by address bytes (Go netip.Addr.Compare). Unparsable last. */
export function compareIps(a: string, b: string): number {
  const pa = parseIp(a);
  const pb = parseIp(b);
  if (!pa || !pb) return pa ? -1 : pb ? 1 : a < b ? -1 : a > b ? 1 : 0;
  if (pa.family !== pb.family) return pa.family - pb.family;
  for (let i = 0; i < pa.bytes.length; i++) if (pa.bytes[i] !== pb.bytes[i]) return pa.bytes[i]! - pb.bytes[i]!;
  return 0;
}

/** The address family of an IP text: 4, 6, or 0 when it is not an IP. */
export function ipFamily(text: string): 0 | 4 | 6 {
  return parseIp(text)?.family ?? 0;
}

/** A node found in the status: the peer (or Self), whether it is Self, and the IP to use. */
export interface ResolvedNode {
  /** null only with `anyIp` for an IP no node of the netmap has (e.g. behind a subnet route). */
  node: PeerStatus | null;
  self: boolean;
  /** The IP the user gave, or the node's first tailnet IP when a name was given. */
  ip: string;
}

/**
 * Resolves `arg` (IP or name) against the status; Self is looked at after the peers, as
 * Tailscale does. With `anyIp`, an IP no node has is returned as is (Tailscale's ping and nc
 * use a given IP directly; the daemon decides). Throws CliError `ERR_NO_SUCH_NODE` naming the
 * argument when nothing matches, `ERR_NO_IP` when the node has no tailnet IP.
 */
export function resolveNode(st: Status, arg: string, opts: { anyIp?: boolean } = {}): ResolvedNode {
  const peers = Object.values(st.Peer ?? {});
  const ip = canonicalIp(arg);
  if (ip !== null) {
    const hasIp = (ps: PeerStatus): boolean => (ps.TailscaleIPs ?? []).some((a) => canonicalIp(a) === ip);
    const peer = peers.find(hasIp);
    if (peer) return { node: peer, self: false, ip };
    if (st.Self && hasIp(st.Self)) return { node: st.Self, self: true, ip };
    if (opts.anyIp) return { node: null, self: false, ip };
    throw new CliError("ERR_NO_SUCH_NODE", `no peer found with IP ${ip}`);
  }
  const want = arg.toLowerCase().replace(/\.$/, "");
  const matches = (ps: PeerStatus): boolean => {
    const dns = (ps.DNSName ?? "").toLowerCase().replace(/\.$/, "");
    return (dns !== "" && (dns === want || dns.split(".")[0] === want)) || (ps.HostName ?? "").toLowerCase() === want;
  };
  const found = peers.find(matches);
  const node = found ?? (st.Self && matches(st.Self) ? st.Self : undefined);
  if (!node) throw new CliError("ERR_NO_SUCH_NODE", `no peer found with name or IP ${JSON.stringify(arg)}`);
  const first = node.TailscaleIPs?.[0];
  if (!first) throw new CliError("ERR_NO_IP", `node ${JSON.stringify(arg)} found but lacks an IP`);
  return { node, self: node === st.Self, ip: first };
}
