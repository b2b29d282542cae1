/**
 * TAI64N timestamps as WireGuard sends them in initiations: u64 BE (2^62 + 10 + unix
 * seconds) ‖ u32 BE nanoseconds, with the low 24 bits of the nanoseconds masked
 * (wireguard-go's whitener) so the timestamp leaks less about the sender's clock.
 */

/** Length of a TAI64N label. */
export const TAI64N_LENGTH = 12;
const BASE = 0x400000000000000an;
const WHITENER_MASK = 0xffffff;

/** Encodes a wall-clock time (ms since the Unix epoch) as TAI64N. */
export function tai64n(wallMs: number): Uint8Array {
  const out = new Uint8Array(TAI64N_LENGTH);
  const dv = new DataView(out.buffer);
  const secs = Math.floor(wallMs / 1000);
  const nanos = Math.floor((wallMs - secs * 1000) * 1e6);
  dv.setBigUint64(0, BASE + BigInt(secs), false);
  dv.setUint32(8, (nanos & ~WHITENER_MASK) >>> 0, false);
  return out;
}

/** True when TAI64N label `a` is strictly later than `b` (byte-wise big-endian order). */
export function tai64nAfter(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < TAI64N_LENGTH; i++) {
    if (a[i] !== b[i]) return a[i] > b[i];
  }
  return false;
}
