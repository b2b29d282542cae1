/**
 * A UDP endpoint as bytes: the one representation the UDP socket, the WireGuard device
 * (cookie MAC input, roaming) and the edge share. Text appears only at the edges
 * (UAPI, logs), parsed and formatted here.
 *
 * The bytes are a fixed {@link ENDPOINT_BYTES}-byte record, the same layout the native
 * UDP addon (packages/tun/native) reads and writes with recvmmsg/sendmmsg:
 *
 *   remote  [0] family 4|6, [1] 0, [2..3] port (big-endian), [4..19] address (4 or 16
 *           bytes, zero padded)
 *   local   [20] family 0 (none) | same as remote, [21] flags (set by the addon, 0 here),
 *           [22..23] 0, [24..27] ifindex (big-endian u32), [28..43] address
 *
 * The local part is the sticky source (wireguard-go's StdNetEndpoint src): the address
 * and interface a datagram arrived at, and the address a reply is sent from.
 */
import { formatIp, parseIp, parseIpv6 } from "./ip.js";

/** Size of an endpoint record. */
export const ENDPOINT_BYTES = 44;
/** Offset of the local part (sticky source) in a record. */
export const ENDPOINT_LOCAL_OFFSET = 20;

/** The local side of an endpoint (the sticky source). */
export interface EndpointSource {
  /** Local address as text (IPv4 dotted quad or RFC 5952 IPv6). */
  readonly address: string;
  /** Interface index the datagram arrived on (used when sending from IPv6 link-local). */
  readonly ifindex: number;
}

const L = ENDPOINT_LOCAL_OFFSET;

/**
 * An immutable UDP endpoint (apart from {@link Endpoint.clearSrc}, wireguard-go's
 * ClearSrc). Build with {@link Endpoint.of}, {@link Endpoint.parse},
 * {@link Endpoint.fromAddress} or {@link Endpoint.fromRecord}.
 */
export class Endpoint {
  /** The {@link ENDPOINT_BYTES}-byte record (owned by this object: do not modify). */
  readonly bytes: Uint8Array;
  /** IPv6 zone (`fe80::1%eth0` → "eth0"), kept for display; not part of the record. */
  readonly zone: string | undefined;
  #address: string | undefined;
  #mac: Uint8Array | undefined;

  private constructor(bytes: Uint8Array, zone: string | undefined) {
    this.bytes = bytes;
    this.zone = zone;
  }

  /**
   * Copies the record at `buf[off..off+44]`. Returns null unless the remote family is 4
   * or 6; a local part of another family is dropped (no sticky source).
   */
  static fromRecord(buf: Uint8Array, off = 0): Endpoint | null {
    const f = buf[off];
    if ((f !== 4 && f !== 6) || buf.length < off + ENDPOINT_BYTES) return null;
    const rec = buf.slice(off, off + ENDPOINT_BYTES);
    rec[1] = 0;
    if (rec[L] !== f) rec.fill(0, L);
    else rec[L + 1] = rec[L + 2] = rec[L + 3] = 0;
    return new Endpoint(rec, undefined);
  }

  /**
   * An endpoint of `ip` (4 or 16 bytes) and `port`, optionally with a sticky source of
   * the same family. Throws RangeError for other lengths, a port outside 0..65535 or a
   * source of the other family.
   */
  static of(ip: Uint8Array, port: number, src?: { ip: Uint8Array; ifindex: number }, zone?: string): Endpoint {
    if (ip.length !== 4 && ip.length !== 16) throw new RangeError(`endpoint address must be 4 or 16 bytes, got ${ip.length}`);
    if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw new RangeError(`endpoint port must be 0..65535, got ${port}`);
    const rec = new Uint8Array(ENDPOINT_BYTES);
    const family = ip.length === 4 ? 4 : 6;
    rec[0] = family;
    rec[2] = port >>> 8;
    rec[3] = port & 0xff;
    rec.set(ip, 4);
    if (src !== undefined) {
      if (src.ip.length !== ip.length) throw new RangeError("endpoint source must be of the endpoint's family");
      rec[L] = family;
      new DataView(rec.buffer).setUint32(L + 4, src.ifindex >>> 0);
      rec.set(src.ip, L + 8);
    }
    return new Endpoint(rec, family === 6 && zone !== undefined && zone !== "" ? zone : undefined);
  }

  /**
   * An endpoint from address text (IPv4, or IPv6 with an optional `%zone`) and a port,
   * with an optional source given as text; null if an address does not parse.
   */
  static fromAddress(address: string, port: number, src?: EndpointSource): Endpoint | null {
    const ip = parseIp(address, true);
    if (ip === null || !Number.isInteger(port) || port < 0 || port > 0xffff) return null;
    let s: { ip: Uint8Array; ifindex: number } | undefined;
    if (src !== undefined) {
      const sip = parseIp(src.address);
      if (sip === null || sip.family !== ip.family) return null;
      s = { ip: sip.bytes, ifindex: src.ifindex };
    }
    return Endpoint.of(ip.bytes, port, s, ip.zone);
  }

  /**
   * Parses a numeric endpoint as Go's `netip.ParseAddrPort`: `a.b.c.d:port` or
   * `[ipv6]:port` (a zone as in `[fe80::1%eth0]:51820` is kept). Null for anything else
   * (host names, missing or out-of-range port, bare IPv6); never throws.
   */
  static parse(text: string): Endpoint | null {
    const colon = text.lastIndexOf(":");
    if (colon < 0) return null;
    const host = text.slice(0, colon);
    const portText = text.slice(colon + 1);
    if (!/^[0-9]+$/.test(portText)) return null;
    const port = Number(portText);
    if (port > 0xffff) return null;
    if (host.startsWith("[")) {
      if (host.length < 2 || !host.endsWith("]")) return null;
      const ip = parseIpv6(host.slice(1, -1), true);
      return ip === null ? null : Endpoint.of(ip.bytes, port, undefined, ip.zone);
    }
    const ip = parseIp(host);
    if (ip === null || ip.family !== 4) return null;
    return Endpoint.of(ip.bytes, port);
  }

  /** 4 or 6. */
  get family(): 4 | 6 {
    return this.bytes[0] === 4 ? 4 : 6;
  }

  /** UDP port. */
  get port(): number {
    return (this.bytes[2]! << 8) | this.bytes[3]!;
  }

  /** The address bytes (4 or 16; a view into {@link bytes}: do not modify). */
  get ip(): Uint8Array {
    return this.bytes.subarray(4, this.bytes[0] === 4 ? 8 : 20);
  }

  /** The address as text (RFC 5952 for IPv6, with `%zone` if any). */
  get address(): string {
    if (this.#address === undefined) {
      this.#address = formatIp(this.ip) + (this.zone === undefined ? "" : `%${this.zone}`);
    }
    return this.#address;
  }

  /** Whether a sticky source is set. */
  get hasSrc(): boolean {
    return this.bytes[L] !== 0;
  }

  /** The sticky source, if any (decoded on each call: for display and tests). */
  get src(): EndpointSource | undefined {
    if (this.bytes[L] === 0) return undefined;
    const ip = this.bytes.subarray(L + 8, L + 8 + (this.bytes[0] === 4 ? 4 : 16));
    return { address: formatIp(ip), ifindex: new DataView(this.bytes.buffer, this.bytes.byteOffset).getUint32(L + 4) };
  }

  /**
   * Forgets the sticky source (wireguard-go's ClearSrc): later sends to this object go
   * from the kernel's choice of source.
   */
  clearSrc(): void {
    this.bytes.fill(0, L);
  }

  /** This endpoint without its sticky source (itself when it has none). */
  withoutSrc(): Endpoint {
    if (this.bytes[L] === 0) return this;
    const rec = this.bytes.slice();
    rec.fill(0, L);
    return new Endpoint(rec, this.zone);
  }

  /** Whether the record at `buf[off..]` is byte-for-byte this endpoint's record. */
  matchesRecord(buf: Uint8Array, off: number): boolean {
    const b = this.bytes;
    for (let k = 0; k < ENDPOINT_BYTES; k++) if (b[k] !== buf[off + k]) return false;
    return true;
  }

  /** Whether both have the same remote address and port (sources and zones ignored). */
  sameAddrPort(o: Endpoint): boolean {
    const a = this.bytes;
    const b = o.bytes;
    for (let k = 0; k < L; k++) if (a[k] !== b[k]) return false;
    return true;
  }

  /**
   * Address bytes ‖ port (big-endian): the "source address" input of WireGuard's cookie
   * MAC (whitepaper §5.4.7; wireguard-go DstToBytes). Cached; do not modify.
   */
  addrPortBytes(): Uint8Array {
    if (this.#mac === undefined) {
      const ip = this.ip;
      const out = new Uint8Array(ip.length + 2);
      out.set(ip);
      out[ip.length] = this.bytes[2]!;
      out[ip.length + 1] = this.bytes[3]!;
      this.#mac = out;
    }
    return this.#mac;
  }

  /** `1.2.3.4:51820` or `[2001:db8::1]:51820` (Go's AddrPort.String, as UAPI prints it). */
  toString(): string {
    return this.bytes[0] === 4 ? `${this.address}:${this.port}` : `[${this.address}]:${this.port}`;
  }
}
