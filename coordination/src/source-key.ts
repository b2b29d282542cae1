/**
 * The key under which per-source limits count a client: its IPv4 address, or the /64
 * prefix of its IPv6 address (one host usually owns a whole /64, so counting single IPv6
 * addresses would let one machine pose as 2^64 sources — the grouping nginx, fail2ban and
 * most rate limiters use). IPv4-mapped IPv6 addresses ("::ffff:192.0.2.1") count as IPv4.
 */
import { isIPv4, isIPv6 } from "node:net";

/**
 * `address` as a source key: "192.0.2.1", "2001:db8:1:2::/64", or "unknown" when the
 * socket has no address (already closed) or it is not an IP address (unix socket).
 */
export function sourceKey(address: string | undefined | null): string {
  if (!address) return "unknown";
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (mapped && isIPv4(mapped[1]!)) return mapped[1]!;
  if (isIPv4(address)) return address;
  const bare = address.split("%")[0]!; // zone index (fe80::1%eth0)
  if (!isIPv6(bare)) return "unknown";
  const groups = expandIPv6(bare);
  return `${groups.slice(0, 4).map((g) => g.toString(16)).join(":")}::/64`;
}

/** The eight 16-bit groups of a valid IPv6 address (dotted IPv4 tails converted). */
function expandIPv6(addr: string): number[] {
  let text = addr;
  const v4 = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes("::") ? (text.split("::") as [string, string]) : [text, null];
  const parse = (s: string) => (s === "" ? [] : s.split(":").map((g) => parseInt(g, 16)));
  const h = parse(head);
  if (tail === null) return h;
  const t = parse(tail);
  return [...h, ...Array<number>(8 - h.length - t.length).fill(0), ...t];
}
