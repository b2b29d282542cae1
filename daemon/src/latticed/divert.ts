/**
 * Port-22 diversion in the data path (Tailscale SSH "claims port 22 on the tailnet
 * address"): with RunSSH on, TCP packets from a peer to <our tailnet IP>:22 are rewritten
 * to <our tailnet IP>:P before the TUN write, where P is the embedded SSH server's internal
 * port (listening on the tailnet addresses only); the kernel then delivers them with the
 * peer's real source address, so the server's `whois(remoteAddress)` is the cryptokey-
 * routed identity. Replies read from the TUN with source <our tailnet IP>:P are rewritten
 * back to source port 22. The host's own sshd (0.0.0.0:22) keeps everything else: the
 * LAN, loopback, and tailnet port 22 while RunSSH is off.
 *
 * Port rewrites update the TCP checksum incrementally (RFC 1624 eqn. 3:
 * HC' = ~(~HC + ~m + m')); the IP header checksum does not cover ports.
 *
 * Hardening: packets from peers straight to :P are dropped (counted) — P is internal;
 * every diverted SYN is recorded (source IP + port, bounded table, 60 s) and the daemon
 * closes an accepted connection whose source is not in it ({@link SshDivert.takeFlow}),
 * so a local process connecting to <tailnet IP>:P (e.g. with a non-local bind to a peer's
 * address) never gets a peer's identity. Only first IPv4 fragments / IPv6 packets whose
 * next header is TCP are diverted (the tailnet MTU is 1280 and TCP sets DF; Tailscale's
 * netstack does not reassemble either).
 *
 * Pure (no I/O): the engine calls {@link SshDivert.inbound}/{@link SshDivert.outbound}
 * from its filter hook; the clock is injected.
 */
import { formatIp, parseIp } from "@lattice/netaddr";

/** TCP's IANA protocol number. */
const TCP = 6;
/** SSH's port. */
export const SSH_PORT = 22;
/** Diverted SYNs remembered for the accept check. */
export const FLOW_TABLE_MAX = 4096;
/** How long a diverted SYN's record waits for the accept (ms). */
export const FLOW_TTL_MS = 60_000;

/** Where the TCP header and ports of an IP packet are. */
export interface TcpView {
  family: 4 | 6;
  /** Source / destination IP bytes (views into the packet). */
  src: Uint8Array;
  dst: Uint8Array;
  /** Offset of the TCP header. */
  tcp: number;
  sport: number;
  dport: number;
  /** SYN set and ACK clear: a connection's first packet. */
  syn: boolean;
}

/**
 * Locates the TCP header of an IPv4 or IPv6 packet; null when it is not TCP, too short,
 * a non-first IPv4 fragment, or IPv6 with extension headers.
 */
export function tcpView(p: Uint8Array): TcpView | null {
  if (p.length < 20) return null;
  const v = p[0]! >> 4;
  let tcp: number;
  let family: 4 | 6;
  let src: Uint8Array;
  let dst: Uint8Array;
  if (v === 4) {
    const ihl = (p[0]! & 0x0f) * 4;
    if (ihl < 20 || p[9] !== TCP) return null;
    if ((((p[6]! & 0x1f) << 8) | p[7]!) !== 0) return null; // fragment offset ≠ 0
    tcp = ihl;
    family = 4;
    src = p.subarray(12, 16);
    dst = p.subarray(16, 20);
  } else if (v === 6) {
    if (p.length < 40 || p[6] !== TCP) return null;
    tcp = 40;
    family = 6;
    src = p.subarray(8, 24);
    dst = p.subarray(24, 40);
  } else return null;
  if (p.length < tcp + 20) return null;
  const flags = p[tcp + 13]!;
  return {
    family,
    src,
    dst,
    tcp,
    sport: (p[tcp]! << 8) | p[tcp + 1]!,
    dport: (p[tcp + 2]! << 8) | p[tcp + 3]!,
    syn: (flags & 0x02) !== 0 && (flags & 0x10) === 0,
  };
}

/** RFC 1624 eqn. 3: the checksum after a 16-bit word changes from `oldWord` to `newWord`. */
export function checksumUpdate(sum: number, oldWord: number, newWord: number): number {
  let s = (~sum & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff);
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** Rewrites the 16-bit port at byte `at` of packet `p` (TCP header at `tcp`), checksum included. */
export function rewritePort(p: Uint8Array, tcp: number, at: number, port: number): void {
  const old = (p[at]! << 8) | p[at + 1]!;
  if (old === port) return;
  const cs = tcp + 16;
  const sum = (p[cs]! << 8) | p[cs + 1]!;
  const next = checksumUpdate(sum, old, port);
  p[at] = port >> 8;
  p[at + 1] = port & 0xff;
  p[cs] = next >> 8;
  p[cs + 1] = next & 0xff;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Counters of the diversion. */
export interface DivertStats {
  /** Inbound packets rewritten :22 → :P. */
  divertedIn: number;
  /** Outbound packets rewritten :P → :22. */
  divertedOut: number;
  /** Inbound packets from peers straight to :P (dropped). */
  droppedDirect: number;
  /** Accepted connections without a diverted SYN (closed). */
  refusedUndiverted: number;
}

/** The diversion state (see the file comment). */
export class SshDivert {
  readonly stats: DivertStats = { divertedIn: 0, divertedOut: 0, droppedDirect: 0, refusedUndiverted: 0 };
  #port = 0;
  #addrs: Uint8Array[] = [];
  /** "ip|port" of diverted SYNs → time seen (insertion order = age). */
  readonly #flows = new Map<string, number>();

  constructor(private readonly now: () => number) {}

  /**
   * Turns the diversion on for `addrs` (our tailnet IPs, "100.64.0.1" or with a prefix
   * length) to internal port `port` (1..65535, ≠ 22), or off with port 0.
   */
  configure(addrs: readonly string[], port: number): void {
    if (port !== 0 && (!Number.isInteger(port) || port < 1 || port > 65535 || port === SSH_PORT)) throw new RangeError(`divert port: 1..65535 and not 22 (got ${port})`);
    this.#port = port;
    this.#addrs = addrs.map((a) => parseIp(a.split("/")[0]!)?.bytes).filter((b): b is Uint8Array => b !== undefined);
    if (port === 0) this.#flows.clear();
  }

  /** The internal port, 0 = off. */
  get port(): number {
    return this.#port;
  }

  #ours(ip: Uint8Array): boolean {
    for (const a of this.#addrs) if (sameBytes(a, ip)) return true;
    return false;
  }

  /**
   * A packet decrypted from a peer (already accepted by the packet filter): rewritten in
   * place when it is TCP to our :22; false when it must be dropped (TCP straight to :P).
   */
  inbound(p: Uint8Array): boolean {
    if (this.#port === 0) return true;
    const t = tcpView(p);
    if (!t || !this.#ours(t.dst)) return true;
    if (t.dport === this.#port) {
      this.stats.droppedDirect++;
      return false;
    }
    if (t.dport !== SSH_PORT) return true;
    rewritePort(p, t.tcp, t.tcp + 2, this.#port);
    this.stats.divertedIn++;
    if (t.syn) this.#remember(`${formatIp(t.src)}|${t.sport}`);
    return true;
  }

  /** A packet read from the TUN: source :P of our address is rewritten to :22 in place. */
  outbound(p: Uint8Array): void {
    if (this.#port === 0) return;
    const t = tcpView(p);
    if (!t || t.sport !== this.#port || !this.#ours(t.src)) return;
    rewritePort(p, t.tcp, t.tcp, SSH_PORT);
    this.stats.divertedOut++;
  }

  #remember(key: string): void {
    const now = this.now();
    this.#flows.delete(key);
    this.#flows.set(key, now);
    // Oldest first: drop expired entries and anything over the bound.
    for (const [k, t] of this.#flows) {
      if (this.#flows.size <= FLOW_TABLE_MAX && now - t <= FLOW_TTL_MS) break;
      this.#flows.delete(k);
    }
  }

  /**
   * Whether an accepted connection from `ip`:`port` came through the diversion (a SYN
   * from that source was rewritten in the last {@link FLOW_TTL_MS}); consumes the record.
   * Counts a refusal otherwise.
   */
  takeFlow(ip: string, port: number): boolean {
    const parsed = parseIp(ip.startsWith("::ffff:") && ip.includes(".") ? ip.slice(7) : ip);
    const key = parsed ? `${formatIp(parsed.bytes)}|${port}` : "";
    const t = this.#flows.get(key);
    if (t !== undefined && this.now() - t <= FLOW_TTL_MS) {
      this.#flows.delete(key);
      return true;
    }
    this.stats.refusedUndiverted++;
    return false;
  }
}
