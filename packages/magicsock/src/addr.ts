/**
 * Address helpers: the per-peer "magic" endpoint handed to the WireGuard device, the
 * DERP pseudo-endpoint, and the address classes betterAddr gives bonus points to.
 *
 * Magic endpoint encoding (Lattice's choice; Tailscale gives wireguard-go an opaque
 * endpoint object instead): `[100::<id>]:9`, an address in the RFC 6666 discard-only
 * prefix 100::/64 whose last 32 bits are a per-peer id (big-endian, never 0), port 9
 * (the discard service). Nothing routes there, so a magic endpoint that leaked into a
 * plain UDP socket would go nowhere. Record bytes: [0]=6, [2..3]=port 9,
 * [4..19] = 01 00 00 00 00 00 00 00 00 00 00 00 id[4].
 */
import { Endpoint } from "@lattice/netaddr";
import { DERP_MAGIC_IP } from "./constants.js";

/** Port of magic endpoints. */
export const MAGIC_PORT = 9;

/** The magic endpoint for peer id `id` (1..2^32-1). */
export function magicEndpoint(id: number): Endpoint {
  const ip = new Uint8Array(16);
  ip[0] = 0x01;
  ip[12] = (id >>> 24) & 0xff;
  ip[13] = (id >>> 16) & 0xff;
  ip[14] = (id >>> 8) & 0xff;
  ip[15] = id & 0xff;
  return Endpoint.of(ip, MAGIC_PORT);
}

/**
 * The peer id of a magic endpoint record (`Endpoint.bytes`), or 0 when it is not one.
 * Allocation-free: this runs per datagram on the send path.
 */
export function magicId(b: Uint8Array): number {
  if (b[0] !== 6 || b[4] !== 0x01 || b[3] !== MAGIC_PORT || b[2] !== 0) return 0;
  for (let k = 5; k < 16; k++) if (b[k] !== 0) return 0;
  return ((b[16]! << 24) | (b[17]! << 16) | (b[18]! << 8) | b[19]!) >>> 0;
}

/** The DERP pseudo-endpoint 127.3.3.40:<region> (what the device sees as the source of DERP traffic). */
export function derpEndpoint(region: number): Endpoint {
  return Endpoint.of(DERP_MAGIC_IP, region & 0xffff);
}

/** The region of a DERP pseudo-endpoint record, or 0. */
export function derpRegionOf(b: Uint8Array): number {
  if (b[0] !== 4 || b[4] !== 127 || b[5] !== 3 || b[6] !== 3 || b[7] !== 40) return 0;
  return (b[2]! << 8) | b[3]!;
}

/** Loopback: 127.0.0.0/8, ::1. */
export function isLoopback(ip: Uint8Array): boolean {
  if (ip.length === 4) return ip[0] === 127;
  for (let k = 0; k < 15; k++) if (ip[k] !== 0) return false;
  return ip[15] === 1;
}

/** Link-local: 169.254.0.0/16, fe80::/10. */
export function isLinkLocal(ip: Uint8Array): boolean {
  return ip.length === 4 ? ip[0] === 169 && ip[1] === 254 : ip[0] === 0xfe && (ip[1]! & 0xc0) === 0x80;
}

/** Private (Go's netip.Addr.IsPrivate): 10/8, 172.16/12, 192.168/16, fc00::/7. */
export function isPrivate(ip: Uint8Array): boolean {
  if (ip.length === 4) return ip[0] === 10 || (ip[0] === 172 && (ip[1]! & 0xf0) === 16) || (ip[0] === 192 && ip[1] === 168);
  return (ip[0]! & 0xfe) === 0xfc;
}

/**
 * Bonus points of an address for path selection (endpoint.go betterAddr): loopback +50,
 * link-local +30, private +20, IPv6 +10. A path's score is latency × (100 − points) / 100.
 */
export function addrPoints(ip: Uint8Array): number {
  let p = 0;
  if (isLoopback(ip)) p += 50;
  else if (isLinkLocal(ip)) p += 30;
  else if (isPrivate(ip)) p += 20;
  if (ip.length === 16) p += 10;
  return p;
}
