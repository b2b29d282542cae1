/** Parsing of alias strings ("tag:x", "group:y", "user@domain", CIDRs, hosts, autogroups) and ports. */
import { PolicyError, type Pos } from "./errors.js";
import { parseAddr, parsePrefix } from "./ip.js";
import type { Alias, AutoGroupName, PortRange } from "./model.js";

const AUTOGROUPS: readonly AutoGroupName[] = ["member", "tagged", "self", "internet", "danger-all", "nonroot", "admin", "owner"];

/** Parses one alias; throws PolicyError naming the value when it is not one. */
export function parseAlias(text: string, pos: Pos): Alias {
  if (text === "*") return { kind: "wildcard", text, pos };
  const pfx = parsePrefix(text);
  if (pfx) return { kind: "prefix", range: { v6: pfx.v6, lo: pfx.lo, hi: pfx.hi }, text, pos };
  const bad = prefixError(text);
  if (bad) throw new PolicyError("invalid-value", bad, pos);
  if (text.startsWith("autogroup:")) {
    const name = text.slice("autogroup:".length) as AutoGroupName;
    if (!AUTOGROUPS.includes(name)) {
      throw new PolicyError("invalid-value", `unknown autogroup ${JSON.stringify(text)} (known: ${AUTOGROUPS.map((a) => `autogroup:${a}`).join(", ")})`, pos);
    }
    return { kind: "autogroup", name, text, pos };
  }
  if (text.startsWith("ipset:")) {
    if (text.length === "ipset:".length) throw new PolicyError("invalid-value", "IP set name is empty", pos);
    return { kind: "ipset", name: text, text, pos };
  }
  if (text.startsWith("group:")) return { kind: "group", name: text, text, pos };
  if (text.startsWith("tag:")) return { kind: "tag", name: text, text, pos };
  if (text.startsWith("user:*@")) return { kind: "userDomain", domain: text.slice("user:*@".length), text, pos };
  if (text.includes("@")) return { kind: "user", name: text, text, pos };
  if (!text.includes(":") && text !== "") return { kind: "host", name: text, text, pos };
  throw new PolicyError("invalid-value", `invalid alias ${JSON.stringify(text)}`, pos);
}

/**
 * Why `text`, which looks like an address or a prefix, is not a valid one (null when it
 * does not look like one): a prefix length beyond 32/128, or a malformed address.
 */
export function prefixError(text: string): string | null {
  const slash = text.indexOf("/");
  if (slash < 0) return null;
  const a = parseAddr(text.slice(0, slash));
  const bits = text.slice(slash + 1);
  if (!a) return /^[0-9a-fA-F.:]+$/.test(text.slice(0, slash)) ? `invalid IP address ${JSON.stringify(text.slice(0, slash))}` : null;
  const width = a.v6 ? 128 : 32;
  if (!/^\d{1,3}$/.test(bits) || Number(bits) > width) {
    return `invalid prefix length ${JSON.stringify(bits)}: must be 0-${width} for ${a.v6 ? "IPv6" : "IPv4"}`;
  }
  return null;
}

/** Splits "alias:ports" at the last colon, handling "[v6]:port" and bare IPv6 prefixes. */
export function splitHostPort(input: string, pos: Pos): { alias: string; ports: string } {
  let s = input;
  if (s.startsWith("[")) {
    const close = s.indexOf("]");
    const host = close > 0 ? s.slice(1, close) : "";
    const a = parseAddr(host);
    if (!a || !a.v6) throw new PolicyError("invalid-value", `dst=${JSON.stringify(input)}: square brackets are only valid around IPv6 addresses`, pos);
    s = host + s.slice(close + 1);
  }
  const i = s.lastIndexOf(":");
  if (i <= 0 || i === s.length - 1) {
    throw new PolicyError("invalid-value", `dst=${JSON.stringify(input)}: must be of the form "host:port"`, pos);
  }
  return { alias: s.slice(0, i), ports: s.slice(i + 1) };
}

function parsePort(s: string): number | string {
  if (!/^-?\d+$/.test(s)) return "invalid first integer";
  const n = Number(s);
  if (n < 0 || n > 65535) return "port number out of range";
  return n;
}

/** Parses "*", "22", "80,443", "8000-8100" into port ranges; returns an error text when invalid. */
export function parsePorts(spec: string): PortRange[] | string {
  if (spec === "*") return [{ First: 0, Last: 65535 }];
  const out: PortRange[] = [];
  for (const part of spec.split(",")) {
    if (part.includes("-")) {
      const bits = part.split("-").filter((x) => x !== "");
      if (bits.length !== 2) return "invalid port range format";
      const a = parsePort(bits[0]);
      const b = parsePort(bits[1]);
      if (typeof a === "string") return a;
      if (typeof b === "string") return b;
      if (a > b) return "invalid port range: first port is greater than last port";
      out.push({ First: a, Last: b });
    } else {
      const p = parsePort(part);
      if (typeof p === "string") return p;
      if (p < 1) return "first port must be >0, or use '*' for wildcard";
      out.push({ First: p, Last: p });
    }
  }
  return out;
}

const PROTOCOLS: Record<string, number> = {
  icmp: 1,
  igmp: 2,
  ipv4: 4,
  "ip-in-ip": 4,
  tcp: 6,
  egp: 8,
  igp: 9,
  udp: 17,
  gre: 47,
  esp: 50,
  ah: 51,
  "ipv6-icmp": 58,
  sctp: 132,
  fc: 133,
};

/** Parses a protocol name or number; "" → null (default set); returns an error text when invalid. */
export function parseProto(raw: string): number[] | null | string {
  const s = raw.toLowerCase();
  if (s === "") return null;
  if (s === "*") return 'protocol "*" is not allowed; omit proto for all protocols';
  if (s in PROTOCOLS) return [PROTOCOLS[s]];
  if (!/^\d+$/.test(s)) return `${JSON.stringify(raw)} must be a known protocol name or valid protocol number 0-255`;
  if (s.length > 1 && s.startsWith("0")) return `protocol number ${JSON.stringify(raw)} has a leading zero`;
  if (s === "0") return `protocol number ${JSON.stringify(raw)} has a leading zero`;
  const n = Number(s);
  if (n > 255) return `protocol number ${n} out of range`;
  return [n];
}
