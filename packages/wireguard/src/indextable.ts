/**
 * Random 32-bit receiver indices (whitepaper §5.4.1: "I_sender ... chosen randomly"),
 * mapping each to the handshake or keypair that owns it. Randomness is injected.
 */

/** What an index points at: a handshake in progress or an established keypair. */
export interface IndexEntry<P, K> {
  peer: P;
  keypair: K | null;
}

/** Table of local indices in use. */
export class IndexTable<P, K> {
  private readonly entries = new Map<number, IndexEntry<P, K>>();

  constructor(private readonly random: (n: number) => Uint8Array) {}

  /** Allocates a fresh random nonzero index for a handshake of `peer`. */
  newIndexForHandshake(peer: P): number {
    for (;;) {
      const r = this.random(4);
      const idx = (r[0] | (r[1] << 8) | (r[2] << 16) | (r[3] << 24)) >>> 0;
      if (idx === 0 || this.entries.has(idx)) continue;
      this.entries.set(idx, { peer, keypair: null });
      return idx;
    }
  }

  /** Points an index at an established keypair (the handshake's index becomes the keypair's). */
  swapForKeypair(index: number, keypair: K): void {
    const e = this.entries.get(index);
    if (e) e.keypair = keypair;
  }

  /** Looks up an index. */
  lookup(index: number): IndexEntry<P, K> | undefined {
    return this.entries.get(index);
  }

  /** Frees an index. */
  delete(index: number): void {
    this.entries.delete(index);
  }

  /** Number of indices in use. */
  get size(): number {
    return this.entries.size;
  }
}
