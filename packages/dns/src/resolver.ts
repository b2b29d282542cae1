/**
 * The MagicDNS resolver core (Tailscale's quad-100, net/dns/resolver/tsdns.go, cut to
 * MagicDNS): sans-IO, one DNS message in, one decision out.
 *
 * - A/AAAA for a host's FQDN `name.<domain>` and its single-label short name `name`
 *   (authoritative, TTL {@link ANSWER_TTL}); other types for a known name: NOERROR, no data.
 * - PTR for tailnet addresses: authoritative for 64–127.100.in-addr.arpa and
 *   0.e.1.a.c.5.1.1.a.7.d.f.ip6.arpa (unknown → NXDOMAIN); 100.100.100.100 →
 *   `magicdns.localhost-tailscale-daemon.` (as Tailscale).
 * - An unknown name under the tailnet domain, or under a split-DNS route without
 *   resolvers (a "MagicDNS suffix", unless a route with resolvers is more specific):
 *   NXDOMAIN with that suffix's SOA in the authority section (negative TTL
 *   {@link NEGATIVE_TTL} s, RFC 2308).
 * - Everything else: `forward` with the canonical query name (the edge picks the upstream,
 *   e.g. by split-DNS route, and sends the query unchanged).
 * - EDNS0 (RFC 6891): a query with an OPT record gets an OPT record back (our UDP size
 *   {@link MAX_UDP_PAYLOAD}); EDNS version > 0 → BADVERS. Over UDP, answers larger than
 *   the client's size (512 without EDNS) are truncated (TC, RFC 1035 §4.2.1); over TCP
 *   (`handle(q, "tcp")`) the limit is 65 535 bytes (RFC 7766).
 * - Hostile input is never thrown: shorter than a header, a response, or larger than
 *   {@link MAX_QUERY} → `drop`; undecodable, not exactly one question → FORMERR; an opcode
 *   other than QUERY → NOTIMP; a class other than IN → REFUSED.
 *
 * Messages are encoded and decoded by the `dns-packet` library.
 */
import dnsPacket from "dns-packet";
import type { Answer, DecodedPacket, Packet, Question } from "dns-packet";
import { canonName, type Zone } from "./zone.js";

/** TTL of positive MagicDNS answers in s (Tailscale's defaultTTL: 600 s). */
export const ANSWER_TTL = 600;
/** Negative-answer TTL in s (SOA minimum and TTL). */
export const NEGATIVE_TTL = 10;
/** Largest query accepted, bytes (larger → dropped). */
export const MAX_QUERY = 4096;
/** Largest UDP payload we send: 1280 (TUN MTU) − 40 (IPv6) − 8 (UDP). */
export const MAX_UDP_PAYLOAD = 1232;
/** The PTR target of 100.100.100.100 (Tailscale's). */
export const QUAD100_PTR = "magicdns.localhost-tailscale-daemon.";

/** Response codes used (RFC 1035 §4.1.1, RFC 6891 §9). */
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, BADVERS: 16 } as const;

/** Why a query was dropped without an answer. */
export type DropReason = "short" | "not_query" | "too_big";

/** What to do with a query. */
export type Decision =
  | { kind: "answer"; response: Uint8Array; rcode: number }
  | { kind: "forward"; name: string }
  | { kind: "drop"; reason: DropReason };

const QUAD100 = new Uint8Array([100, 100, 100, 100]);
const V4_REV = "in-addr.arpa";
const V6_REV_ZONE = "0.e.1.a.c.5.1.1.a.7.d.f.ip6.arpa";

/**
 * A header-only reply (id, opcode and RD copied, QR set) with `rcode`: for queries that
 * cannot be decoded. `query` must be at least 12 bytes.
 */
export function headerOnlyReply(query: Uint8Array, rcode: number): Uint8Array {
  const r = new Uint8Array(12);
  r[0] = query[0]!;
  r[1] = query[1]!;
  r[2] = 0x80 | (query[2]! & 0x79); // QR, opcode, RD
  r[3] = 0x80 | (rcode & 0x0f); // RA
  return r;
}

/**
 * SERVFAIL for `query` (e.g. the upstream timed out): the question echoed when it
 * decodes, else header only; null when the query is not a query at all.
 */
export function servfail(query: Uint8Array): Uint8Array | null {
  if (query.length < 12 || (query[2]! & 0x80) !== 0) return null;
  try {
    const q = dnsPacket.decode(Buffer.from(query.buffer, query.byteOffset, query.length));
    return encodeReply(q, RCODE.SERVFAIL, [], [], false);
  } catch {
    return headerOnlyReply(query, RCODE.SERVFAIL);
  }
}

function optOf(q: DecodedPacket): { udpPayloadSize: number; ednsVersion: number; flags: number } | null {
  const o = q.additionals?.find((a) => a.type === "OPT") as { udpPayloadSize: number; ednsVersion: number; flags: number } | undefined;
  return o ?? null;
}

/** How a query arrived: UDP answers are fitted to the client's size, TCP ones to 65 535 bytes. */
export type Transport = "udp" | "tcp";

function encodeReply(q: DecodedPacket, rcode: number, answers: Answer[], authorities: Answer[], aa: boolean, transport: Transport = "udp"): Uint8Array {
  const opt = optOf(q);
  const max = transport === "tcp" ? 65535 : opt ? Math.max(512, Math.min(opt.udpPayloadSize, MAX_UDP_PAYLOAD)) : 512;
  const additionals: Answer[] = [];
  if (opt) {
    additionals.push({
      type: "OPT",
      name: ".",
      udpPayloadSize: MAX_UDP_PAYLOAD,
      extendedRcode: rcode >> 4,
      ednsVersion: 0,
      flags: opt.flags & dnsPacket.DNSSEC_OK,
    } as Answer);
  }
  let flags = (q.flags ?? 0) & (dnsPacket.RECURSION_DESIRED | dnsPacket.CHECKING_DISABLED | 0x7800);
  flags |= dnsPacket.RECURSION_AVAILABLE | (rcode & 0x0f);
  if (aa) flags |= dnsPacket.AUTHORITATIVE_ANSWER;
  const pkt: Packet = { type: "response", id: q.id ?? 0, flags, questions: q.questions ?? [], answers, authorities, additionals };
  let out: Buffer = dnsPacket.encode(pkt);
  if (out.length > max) {
    pkt.answers = [];
    pkt.authorities = [];
    pkt.flags = flags | dnsPacket.TRUNCATED_RESPONSE;
    out = dnsPacket.encode(pkt);
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

function soa(apex: string): Answer {
  return {
    type: "SOA",
    name: apex,
    ttl: NEGATIVE_TTL,
    class: "IN",
    data: { mname: apex, rname: `hostmaster.${apex}`, serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum: NEGATIVE_TTL },
  };
}

/** The address a reverse name stands for; null when it is not a full one. */
function reverseAddr(name: string): Uint8Array | null {
  if (name.endsWith("." + V4_REV)) {
    const labels = name.slice(0, -V4_REV.length - 1).split(".");
    if (labels.length !== 4 || !labels.every((l) => /^(0|[1-9][0-9]{0,2})$/.test(l) && Number(l) <= 255)) return null;
    return new Uint8Array(labels.reverse().map(Number));
  }
  if (name.endsWith(".ip6.arpa")) {
    const labels = name.slice(0, -".ip6.arpa".length).split(".");
    if (labels.length !== 32 || !labels.every((l) => /^[0-9a-f]$/.test(l))) return null;
    const nib = labels.reverse();
    const b = new Uint8Array(16);
    for (let i = 0; i < 16; i++) b[i] = (parseInt(nib[2 * i]!, 16) << 4) | parseInt(nib[2 * i + 1]!, 16);
    return b;
  }
  return null;
}

/** The reverse zone apex `name` falls in that we are authoritative for, or null. */
function reverseApex(name: string): string | null {
  if (name === V6_REV_ZONE || name.endsWith("." + V6_REV_ZONE)) return V6_REV_ZONE;
  const m = /(?:^|\.)([0-9]{1,3})\.100\.in-addr\.arpa$/.exec(name);
  if (m && /^(6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7])$/.test(m[1]!)) return `${m[1]}.100.${V4_REV}`;
  return null;
}

/** Answers MagicDNS queries from a {@link Zone} (see the file comment). */
export class Resolver {
  #zone: Zone;

  constructor(zone: Zone) {
    this.#zone = zone;
  }

  /** Replaces the zone (on every netmap); the next query sees it. */
  setZone(zone: Zone): void {
    this.#zone = zone;
  }

  /** The current zone. */
  get zone(): Zone {
    return this.#zone;
  }

  /**
   * Decides what to do with one DNS query message (a UDP payload, or a TCP message without
   * its length prefix with `transport` "tcp"). Never throws.
   */
  handle(query: Uint8Array, transport: Transport = "udp"): Decision {
    if (query.length < 12) return { kind: "drop", reason: "short" };
    if (query.length > MAX_QUERY) return { kind: "drop", reason: "too_big" };
    if ((query[2]! & 0x80) !== 0) return { kind: "drop", reason: "not_query" };
    const opcode = (query[2]! >> 3) & 0x0f;
    if (opcode !== 0) return answer(headerOnlyReply(query, RCODE.NOTIMP), RCODE.NOTIMP);
    let q: DecodedPacket;
    try {
      q = dnsPacket.decode(Buffer.from(query.buffer, query.byteOffset, query.length));
    } catch {
      return answer(headerOnlyReply(query, RCODE.FORMERR), RCODE.FORMERR);
    }
    try {
      return this.#decide(q, query, transport);
    } catch {
      // A decoded message dns-packet cannot re-encode (e.g. a label it mis-escapes).
      return answer(headerOnlyReply(query, RCODE.FORMERR), RCODE.FORMERR);
    }
  }

  #decide(q: DecodedPacket, raw: Uint8Array, t: Transport): Decision {
    const questions = q.questions ?? [];
    if (questions.length !== 1 || (q.answers?.length ?? 0) > 0 || (q.authorities?.length ?? 0) > 0) {
      return answer(headerOnlyReply(raw, RCODE.FORMERR), RCODE.FORMERR);
    }
    const opts = (q.additionals ?? []).filter((a) => a.type === "OPT");
    if (opts.length > 1) return answer(headerOnlyReply(raw, RCODE.FORMERR), RCODE.FORMERR);
    const opt = optOf(q);
    if (opt && opt.ednsVersion > 0) return reply(q, t, RCODE.BADVERS, [], [], false);
    const question = questions[0]!;
    const name = canonName(question.name);
    const klass = question.class ?? "IN";
    const zone = this.#zone;
    const revApex = reverseApex(name);
    const isQuad100Ptr = name === "100.100.100.100.in-addr.arpa";
    const local = zone.lookupName(name);
    if (!local && !revApex && !isQuad100Ptr && !zone.inDomain(name)) return { kind: "forward", name };
    if (klass !== "IN" && klass !== "ANY") return reply(q, t, RCODE.REFUSED, [], [], false);
    if (isQuad100Ptr || revApex) return this.#ptr(q, t, question, name, revApex ?? "100.100.100.100.in-addr.arpa");
    if (!local) return reply(q, t, RCODE.NXDOMAIN, [], [soa((zone.authority(name) ?? zone.domain) + ".")], true);
    const answers: Answer[] = [];
    if (question.type === "A") for (const a of local.v4) answers.push(rr(question, "A", ipText(a)));
    if (question.type === "AAAA") for (const a of local.v6) answers.push(rr(question, "AAAA", ipText(a)));
    const apex = zone.domain !== "" ? zone.domain + "." : local.fqdn;
    return reply(q, t, RCODE.NOERROR, answers, answers.length === 0 ? [soa(apex)] : [], true);
  }

  #ptr(q: DecodedPacket, t: Transport, question: Question, name: string, apex: string): Decision {
    const addr = reverseAddr(name);
    const zoneSoa = [soa(apex + ".")];
    if (!addr) return reply(q, t, name === apex ? RCODE.NOERROR : RCODE.NXDOMAIN, [], zoneSoa, true);
    const target = addr.length === 4 && addr.every((b, i) => b === QUAD100[i]) ? QUAD100_PTR : this.#zone.lookupAddr(addr)?.fqdn;
    if (!target) return reply(q, t, RCODE.NXDOMAIN, [], zoneSoa, true);
    if (question.type !== "PTR" && question.type !== ("ANY" as Question["type"])) return reply(q, t, RCODE.NOERROR, [], zoneSoa, true);
    return reply(q, t, RCODE.NOERROR, [rr(question, "PTR", target)], [], true);
  }
}

function answer(response: Uint8Array, rcode: number): Decision {
  return { kind: "answer", response, rcode };
}

function reply(q: DecodedPacket, t: Transport, rcode: number, answers: Answer[], authorities: Answer[], aa: boolean): Decision {
  return answer(encodeReply(q, rcode, answers, authorities, aa, t), rcode);
}

function rr(question: Question, type: "A" | "AAAA" | "PTR", data: string): Answer {
  // The owner name as asked (case preserved, RFC 4343 §4).
  return { type, name: question.name, ttl: ANSWER_TTL, class: "IN", data } as Answer;
}

function ipText(b: Uint8Array): string {
  if (b.length === 4) return b.join(".");
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  return parts.join(":");
}

/**
 * Fits an upstream `reply` into `max` bytes: unchanged when it fits; else the header and
 * question with TC set and the records dropped (the client retries over TCP, RFC 7766);
 * null when the reply cannot be decoded (the caller answers SERVFAIL).
 */
export function fitReply(reply: Uint8Array, max: number): Uint8Array | null {
  if (reply.length <= max) return reply;
  try {
    const p = dnsPacket.decode(Buffer.from(reply.buffer, reply.byteOffset, reply.length));
    const opt = (p.additionals ?? []).filter((a) => a.type === "OPT");
    const out = dnsPacket.encode({ type: "response", id: p.id ?? 0, flags: (p.flags ?? 0) | dnsPacket.TRUNCATED_RESPONSE, questions: p.questions ?? [], answers: [], authorities: [], additionals: opt });
    return out.length <= max ? new Uint8Array(out.buffer, out.byteOffset, out.length) : null;
  } catch {
    return null;
  }
}
