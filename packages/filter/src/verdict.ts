/**
 * Filter verdicts: preallocated, frozen objects (returning one never allocates), each
 * with a stable `reason` and an index into the counters.
 */

/** Why a packet was accepted. */
export type AcceptReason =
  | "keepalive" // zero-length (WireGuard keepalive)
  | "fragment" // a non-first IP fragment (its first fragment was filtered)
  | "icmp-response" // ICMP echo reply or error (Tailscale accepts these unconditionally)
  | "icmp" // ICMP from a source with any rule to this destination
  | "tcp-non-syn" // TCP other than a bare SYN: part of an existing connection
  | "tcp" // TCP SYN allowed by a rule
  | "flow" // UDP/SCTP reply to a flow this node started
  | "udp" // UDP/SCTP allowed by a rule
  | "tsmp" // Tailscale Message Protocol between nodes
  | "portless" // another protocol allowed by a rule covering all ports
  | "outbound"; // sent by this node

/** Why a packet was dropped. */
export type DropReason =
  | "too-short" // 1..19 bytes
  | "malformed" // not IPv4/IPv6, truncated or inconsistent headers, tiny fragment
  | "unknown-protocol" // protocol 0 (IPv6 hop-by-hop, not walked) or 255
  | "multicast" // destination 224.0.0.0/4 or ff00::/8
  | "link-local" // destination 169.254.0.0/16 (but 169.254.169.254) or fe80::/10
  | "not-local" // inbound to an address that is not this node's
  | "no-rule"; // no rule allows it

/** A filter decision. */
export type Verdict =
  | { readonly accept: true; readonly reason: AcceptReason; readonly index: number }
  | { readonly accept: false; readonly reason: DropReason; readonly index: number };

export const ACCEPT_REASONS: readonly AcceptReason[] = [
  "keepalive", "fragment", "icmp-response", "icmp", "tcp-non-syn", "tcp", "flow", "udp", "tsmp", "portless", "outbound",
];
export const DROP_REASONS: readonly DropReason[] = [
  "too-short", "malformed", "unknown-protocol", "multicast", "link-local", "not-local", "no-rule",
];

/** Every verdict, in counter order (accepts first). */
export const VERDICTS: readonly Verdict[] = Object.freeze([
  ...ACCEPT_REASONS.map((reason, index) => Object.freeze({ accept: true as const, reason, index })),
  ...DROP_REASONS.map((reason, i) => Object.freeze({ accept: false as const, reason, index: ACCEPT_REASONS.length + i })),
]);

/** The preallocated accept verdict for `reason`. */
export function accept(reason: AcceptReason): Verdict {
  return VERDICTS[ACCEPT_REASONS.indexOf(reason)]!;
}

/** The preallocated drop verdict for `reason`. */
export function drop(reason: DropReason): Verdict {
  return VERDICTS[ACCEPT_REASONS.length + DROP_REASONS.indexOf(reason)]!;
}
