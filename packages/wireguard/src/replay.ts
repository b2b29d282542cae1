/**
 * Anti-replay filter for transport-data counters: the RFC 6479 sliding window, as
 * wireguard-go's `replay` package and the kernel's `counter.c` do it.
 *
 * The bitmap is 8192 bits (like both references) kept as 256 blocks of 32 bits, since
 * JavaScript bit operations are 32-bit. One block is always being recycled, so the
 * window is 8192 − 32 = {@link REPLAY_WINDOW_SIZE} = 8160 counters (wireguard-go and
 * the kernel use 64-bit blocks and get 8128). A counter is accepted once, if it is
 * below `2^64 − 2^13 − 1` (REJECT_AFTER_MESSAGES) and not older than the newest
 * accepted counter minus the window.
 *
 * Counters are kept as plain numbers while they stay below 2^53 (every practical
 * session: 2^53 packets is decades at line rate); the first larger counter switches the
 * filter to bigint arithmetic until {@link ReplayFilter.reset}.
 */

const BLOCK_BITS_LOG = 5;
const BLOCK_BITS = 1 << BLOCK_BITS_LOG;
const RING_BLOCKS = 256;
const BLOCK_MASK = RING_BLOCKS - 1;

/** Counters up to this far behind the newest accepted one are still accepted (8160). */
export const REPLAY_WINDOW_SIZE = (RING_BLOCKS - 1) * BLOCK_BITS;

const REJECT_AFTER = (1n << 64n) - (1n << 13n) - 1n;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const TWO_32 = 0x1_0000_0000;

/** RFC 6479 sliding-window replay filter for one receiving keypair. */
export class ReplayFilter {
  /** Counters at or above this (2^64 − 2^13 − 1, REJECT_AFTER_MESSAGES) are rejected. */
  static readonly REJECT_AFTER_MESSAGES = REJECT_AFTER;

  private readonly ring = new Uint32Array(RING_BLOCKS);
  /** Newest accepted counter while in number mode. */
  private last = 0;
  /** Newest accepted counter once in bigint mode (null while in number mode). */
  private lastBig: bigint | null = null;

  /** Forgets everything (a fresh keypair). */
  reset(): void {
    this.ring.fill(0);
    this.last = 0;
    this.lastBig = null;
  }

  /** Checks `counter`; true means accept, and records it so a replay is refused. */
  validate(counter: bigint): boolean {
    if (counter < 0n || counter >= REJECT_AFTER) return false;
    if (this.lastBig === null && counter <= MAX_SAFE) return this.validateSmall(Number(counter));
    return this.validateBig(counter);
  }

  /**
   * As {@link validate} for a counter given as a number; it must be a non-negative safe
   * integer (anything else is rejected). No bigint work while in number mode.
   */
  validateNumber(counter: number): boolean {
    if (!Number.isSafeInteger(counter) || counter < 0) return false;
    if (this.lastBig !== null) return this.validateBig(BigInt(counter));
    return this.validateSmall(counter);
  }

  /**
   * As {@link validate} for the counter split into its high and low unsigned 32-bit
   * halves (how a packet parser reads the little-endian u64). Avoids bigint on the
   * common path.
   */
  validateHiLo(high: number, low: number): boolean {
    const hi = high >>> 0;
    const lo = low >>> 0;
    if (hi < 0x20_0000 && this.lastBig === null) return this.validateSmall(hi * TWO_32 + lo);
    return this.validate((BigInt(hi) << 32n) | BigInt(lo));
  }

  private validateSmall(c: number): boolean {
    const ring = this.ring;
    const indexBlock = Math.floor(c / BLOCK_BITS);
    if (c > this.last) {
      const current = Math.floor(this.last / BLOCK_BITS);
      const diff = Math.min(indexBlock - current, RING_BLOCKS);
      // `& BLOCK_MASK` on numbers below 2^53 keeps the exact low bits (ToInt32 is mod 2^32).
      for (let i = 1; i <= diff; i++) ring[(current + i) & BLOCK_MASK] = 0;
      this.last = c;
    } else if (this.last - c > REPLAY_WINDOW_SIZE) {
      return false;
    }
    return this.testAndSet(indexBlock & BLOCK_MASK, c & (BLOCK_BITS - 1));
  }

  private validateBig(c: bigint): boolean {
    const last = this.lastBig ?? BigInt(this.last);
    this.lastBig = last;
    const ring = this.ring;
    const indexBlock = c >> BigInt(BLOCK_BITS_LOG);
    if (c > last) {
      const current = last >> BigInt(BLOCK_BITS_LOG);
      const diffBig = indexBlock - current;
      const diff = diffBig > BigInt(RING_BLOCKS) ? RING_BLOCKS : Number(diffBig);
      const cur = Number(current & BigInt(BLOCK_MASK));
      for (let i = 1; i <= diff; i++) ring[(cur + i) & BLOCK_MASK] = 0;
      this.lastBig = c;
    } else if (last - c > BigInt(REPLAY_WINDOW_SIZE)) {
      return false;
    }
    return this.testAndSet(
      Number(indexBlock & BigInt(BLOCK_MASK)),
      Number(c & BigInt(BLOCK_BITS - 1)),
    );
  }

  private testAndSet(block: number, bit: number): boolean {
    const old = this.ring[block];
    const next = (old | (1 << bit)) >>> 0;
    if (old === next) return false;
    this.ring[block] = next;
    return true;
  }
}
