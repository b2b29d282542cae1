/**
 * The few IPv4/IPv6/TCP/UDP/SCTP/ICMP header fields the packet filter needs, decoded
 * without allocating into a reusable {@link ParsedPacket}. Follows Tailscale's
 * `net/packet` `Parsed.Decode`: only the IPv6 Fragment extension header is walked (other
 * extension headers are left as the protocol number), a first fragment is decoded like an
 * unfragmented packet, a later fragment is marked `fragment` unless its offset is below
 * 80 bytes (a tiny-fragment/overlap attack, reported malformed). Stricter than Tailscale:
 * transport headers must lie inside the IP total length, and an IPv4 IHL below 5 is
 * malformed.
 */

/** IANA protocol numbers the filter treats specially. */
export const Proto = {
  ICMPv4: 1,
  IGMP: 2,
  TCP: 6,
  UDP: 17,
  ICMPv6: 58,
  TSMP: 99,
  SCTP: 132,
} as const;

/** TCP flag bits (byte 13 of the TCP header). */
export const TcpFlag = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10 } as const;

/** Outcome of {@link ParsedPacket.decode}. */
export const DecodeStatus = {
  /** Zero-length buffer (a WireGuard keepalive). */
  Empty: 0,
  /** 1..19 bytes: too short for any IP header. */
  TooShort: 1,
  /** Not IPv4/IPv6, truncated, or inconsistent header fields. */
  Malformed: 2,
  /** Protocol 0 (IPv6 hop-by-hop, not walked) or 255 (reserved). */
  UnknownProtocol: 3,
  /** Decoded; see the fields. */
  Ok: 4,
} as const;
export type DecodeStatus = (typeof DecodeStatus)[keyof typeof DecodeStatus];

/** Fragment offsets (in 8-byte blocks) below this are dropped: max IPv4 header + TCP header. */
const MIN_FRAG_BLOCKS = (60 + 20) / 8;
const IPV6_FRAGMENT_HEADER = 44;

/**
 * A decoded packet header. Addresses are four big-endian 32-bit words; an IPv4 address
 * occupies word 3 with words 0..2 zero (the family is `version`). Reuse one instance per
 * caller: `decode` overwrites every field and never allocates.
 */
export class ParsedPacket {
  /** 4 or 6; 0 when the packet is not IP. */
  version = 0;
  /** IP protocol number (after an IPv6 Fragment header, the next header). */
  proto = 0;
  /** A non-first fragment: no transport header, ports are 0. */
  fragment = false;
  /** Source address words. */
  readonly src = new Uint32Array(4);
  /** Destination address words. */
  readonly dst = new Uint32Array(4);
  /** TCP/UDP/SCTP source port; 0 otherwise. */
  srcPort = 0;
  /** TCP/UDP/SCTP destination port; 0 otherwise. */
  dstPort = 0;
  /** TCP flags byte; 0 for other protocols. */
  tcpFlags = 0;
  /** ICMP type of an ICMPv4 (in IPv4) or ICMPv6 (in IPv6) packet, else -1. */
  icmpType = -1;
  /** ICMP code, else -1. */
  icmpCode = -1;
  /** Bytes of transport header available from its start to the IP total length. */
  transportLength = 0;

  /** Decodes `b` into this object; returns the status. Never throws, never allocates. */
  decode(b: Uint8Array): DecodeStatus {
    this.version = 0;
    this.proto = 0;
    this.fragment = false;
    this.srcPort = 0;
    this.dstPort = 0;
    this.tcpFlags = 0;
    this.icmpType = -1;
    this.icmpCode = -1;
    this.transportLength = 0;
    if (b.length === 0) return DecodeStatus.Empty;
    if (b.length < 20) return DecodeStatus.TooShort;
    const v = b[0]! >> 4;
    if (v === 4) return this.decode4(b);
    if (v === 6) return this.decode6(b);
    return DecodeStatus.Malformed;
  }

  private decode4(b: Uint8Array): DecodeStatus {
    const ihl = (b[0]! & 0x0f) << 2;
    const total = (b[2]! << 8) | b[3]!;
    if (ihl < 20 || total < ihl || b.length < total) return DecodeStatus.Malformed;
    this.version = 4;
    this.proto = b[9]!;
    const src = this.src;
    const dst = this.dst;
    src[0] = src[1] = src[2] = 0;
    dst[0] = dst[1] = dst[2] = 0;
    src[3] = ((b[12]! << 24) | (b[13]! << 16) | (b[14]! << 8) | b[15]!) >>> 0;
    dst[3] = ((b[16]! << 24) | (b[17]! << 16) | (b[18]! << 8) | b[19]!) >>> 0;
    const fragOfs = ((b[6]! & 0x1f) << 8) | b[7]!;
    const moreFrags = (b[6]! & 0x20) !== 0;
    if (fragOfs !== 0) {
      if (fragOfs < MIN_FRAG_BLOCKS) return DecodeStatus.Malformed;
      this.fragment = true;
      return DecodeStatus.Ok;
    }
    // A TSMP message is never fragmented (Tailscale rejects the first fragment too).
    if (this.proto === Proto.TSMP && moreFrags) return DecodeStatus.Malformed;
    return this.decodeTransport(b, ihl, total, Proto.ICMPv4);
  }

  private decode6(b: Uint8Array): DecodeStatus {
    if (b.length < 40) return DecodeStatus.Malformed;
    const total = 40 + ((b[4]! << 8) | b[5]!);
    if (b.length < total) return DecodeStatus.Malformed;
    this.version = 6;
    this.proto = b[6]!;
    for (let i = 0; i < 4; i++) {
      const s = 8 + 4 * i;
      const d = 24 + 4 * i;
      this.src[i] = ((b[s]! << 24) | (b[s + 1]! << 16) | (b[s + 2]! << 8) | b[s + 3]!) >>> 0;
      this.dst[i] = ((b[d]! << 24) | (b[d + 1]! << 16) | (b[d + 2]! << 8) | b[d + 3]!) >>> 0;
    }
    let off = 40;
    if (this.proto === IPV6_FRAGMENT_HEADER) {
      if (total < off + 8) return DecodeStatus.Malformed;
      const next = b[off]!;
      const fragOfs = ((b[off + 2]! << 8) | b[off + 3]!) >> 3;
      off += 8;
      if (fragOfs !== 0) {
        if (fragOfs < MIN_FRAG_BLOCKS) return DecodeStatus.Malformed;
        this.proto = next;
        this.fragment = true;
        return DecodeStatus.Ok;
      }
      this.proto = next;
    }
    return this.decodeTransport(b, off, total, Proto.ICMPv6);
  }

  private decodeTransport(b: Uint8Array, off: number, total: number, icmpProto: number): DecodeStatus {
    const avail = total - off;
    this.transportLength = avail;
    switch (this.proto) {
      case 0:
      case 255:
        return DecodeStatus.UnknownProtocol;
      case Proto.TCP:
        if (avail < 20) return DecodeStatus.Malformed;
        this.tcpFlags = b[off + 13]!;
        break;
      case Proto.UDP:
        if (avail < 8) return DecodeStatus.Malformed;
        break;
      case Proto.SCTP:
        if (avail < 12) return DecodeStatus.Malformed;
        break;
      case Proto.TSMP:
        if (avail < 7) return DecodeStatus.Malformed;
        return DecodeStatus.Ok;
      case Proto.IGMP:
        return avail < 8 ? DecodeStatus.Malformed : DecodeStatus.Ok;
      default:
        if (this.proto === icmpProto) {
          if (avail < 4) return DecodeStatus.Malformed;
          this.icmpType = b[off]!;
          this.icmpCode = b[off + 1]!;
        }
        return DecodeStatus.Ok;
    }
    this.srcPort = (b[off]! << 8) | b[off + 1]!;
    this.dstPort = (b[off + 2]! << 8) | b[off + 3]!;
    return DecodeStatus.Ok;
  }

  /** An ICMP echo reply (v4 type 0 / v6 type 129, code 0) with a full 8-byte header. */
  isEchoReply(): boolean {
    if (this.icmpCode !== 0 || this.transportLength < 8) return false;
    return this.version === 4 ? this.icmpType === 0 : this.icmpType === 129;
  }

  /** An ICMP error (v4: unreachable, time exceeded, parameter problem; v6: types 1-4). */
  isIcmpError(): boolean {
    if (this.icmpType < 0 || this.transportLength < 8) return false;
    const t = this.icmpType;
    return this.version === 4 ? t === 3 || t === 11 || t === 12 : t >= 1 && t <= 4;
  }

  /** A TCP SYN without ACK: the first packet of a new connection. */
  isTcpSyn(): boolean {
    return (this.tcpFlags & (TcpFlag.SYN | TcpFlag.ACK)) === TcpFlag.SYN;
  }
}
