/** The packet batch a native reader hands to JS, and errno-name helpers. */
import { constants } from "node:os";

/**
 * One batch of packets read with one native callback. The memory is reused by the
 * next batch: consume or copy packets before the handler returns.
 */
export interface PacketBatch {
  /** Backing buffer. */
  readonly buffer: Uint8Array;
  /** Start of packet i in `buffer`. */
  readonly offsets: Uint32Array;
  /** Length of packet i. */
  readonly lengths: Uint32Array;
  /** Number of packets in this batch. */
  readonly count: number;
}

/** A view of packet i of a batch (no copy; valid only during the handler). */
export function packetAt(batch: PacketBatch, i: number): Uint8Array {
  const off = batch.offsets[i]!;
  return batch.buffer.subarray(off, off + batch.lengths[i]!);
}

/** The errno name for a number (EBADFD is missing from os.constants.errno). */
export function errnoName(n: number): string {
  for (const [k, v] of Object.entries(constants.errno)) if (v === n) return k;
  if (n === 77) return "EBADFD";
  return `errno ${n}`;
}
