/**
 * The filter's connection-tracking table: UDP/SCTP flows this node started, keyed by
 * (version, protocol, remote address, local address, remote port, local port) as an
 * inbound reply would carry them. Bounded (least recently used entry evicted when full,
 * like Tailscale's `flowtrack.Cache` of 512) and, beyond Tailscale, entries expire after
 * an idle timeout; a hit or a new outbound packet refreshes the entry. Fixed-size typed
 * arrays with chained buckets and an intrusive LRU list: no allocation per packet.
 */

const KEY_WORDS = 10;

/** Flow-table limits. */
export interface FlowTableOptions {
  /** Maximum tracked flows (default 4096). */
  maxFlows?: number;
  /** Idle timeout in milliseconds (default 120 000, Linux conntrack's UDP stream timeout). */
  idleTimeoutMs?: number;
}

/** See the module comment. Times are caller-supplied milliseconds (monotonic). */
export class FlowTable {
  readonly maxFlows: number;
  readonly idleTimeoutMs: number;
  private readonly keys: Uint32Array;
  private readonly hashes: Uint32Array;
  private readonly expiry: Float64Array;
  private readonly chain: Int32Array;
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private readonly buckets: Int32Array;
  private readonly free: Int32Array;
  private readonly scratch = new Uint32Array(KEY_WORDS);
  private freeTop = 0;
  private head = -1; // most recently used
  private tail = -1; // least recently used
  private count = 0;

  constructor(opts: FlowTableOptions = {}) {
    const max = opts.maxFlows ?? 4096;
    const timeout = opts.idleTimeoutMs ?? 120_000;
    if (!Number.isInteger(max) || max < 1 || max > 1 << 22) throw new RangeError(`maxFlows must be an integer in 1..${1 << 22}, got ${max}`);
    if (!(timeout > 0)) throw new RangeError(`idleTimeoutMs must be > 0, got ${timeout}`);
    this.maxFlows = max;
    this.idleTimeoutMs = timeout;
    let nb = 16;
    while (nb < max * 2) nb *= 2;
    this.keys = new Uint32Array(max * KEY_WORDS);
    this.hashes = new Uint32Array(max);
    this.expiry = new Float64Array(max);
    this.chain = new Int32Array(max);
    this.prev = new Int32Array(max);
    this.next = new Int32Array(max);
    this.buckets = new Int32Array(nb).fill(-1);
    this.free = new Int32Array(max);
    for (let i = 0; i < max; i++) this.free[i] = max - 1 - i;
    this.freeTop = max;
  }

  /** Number of entries held (expired ones linger until touched or evicted). */
  get size(): number {
    return this.count;
  }

  /**
   * Records the flow so that a packet `remote → local` of the same protocol and ports is
   * found by {@link hit}. `remote`/`local` are 4-word addresses.
   */
  add(version: number, proto: number, remote: Uint32Array, local: Uint32Array, remotePort: number, localPort: number, now: number): void {
    const h = this.fillKey(version, proto, remote, local, remotePort, localPort);
    let i = this.find(h);
    if (i < 0) {
      if (this.freeTop === 0) this.remove(this.tail);
      i = this.free[--this.freeTop]!;
      this.keys.set(this.scratch, i * KEY_WORDS);
      this.hashes[i] = h;
      const b = h & (this.buckets.length - 1);
      this.chain[i] = this.buckets[b]!;
      this.buckets[b] = i;
      this.prev[i] = -1;
      this.next[i] = this.head;
      if (this.head >= 0) this.prev[this.head] = i;
      this.head = i;
      if (this.tail < 0) this.tail = i;
      this.count++;
    } else {
      this.toFront(i);
    }
    this.expiry[i] = now + this.idleTimeoutMs;
  }

  /** Whether a live flow matches; a hit refreshes it, an expired entry is removed. */
  hit(version: number, proto: number, remote: Uint32Array, local: Uint32Array, remotePort: number, localPort: number, now: number): boolean {
    const i = this.find(this.fillKey(version, proto, remote, local, remotePort, localPort));
    if (i < 0) return false;
    if (this.expiry[i]! <= now) {
      this.remove(i);
      return false;
    }
    this.toFront(i);
    this.expiry[i] = now + this.idleTimeoutMs;
    return true;
  }

  private fillKey(version: number, proto: number, remote: Uint32Array, local: Uint32Array, rp: number, lp: number): number {
    const k = this.scratch;
    k[0] = (version << 8) | proto;
    k[1] = ((rp << 16) | lp) >>> 0;
    k[2] = remote[0]!;
    k[3] = remote[1]!;
    k[4] = remote[2]!;
    k[5] = remote[3]!;
    k[6] = local[0]!;
    k[7] = local[1]!;
    k[8] = local[2]!;
    k[9] = local[3]!;
    let h = 0x811c9dc5;
    for (let j = 0; j < KEY_WORDS; j++) {
      h = Math.imul(h ^ k[j]!, 0x01000193);
      h ^= h >>> 15;
    }
    // 30 bits keep the hash a small integer in V8 (a wider uint32 return would be boxed).
    return h & 0x3fffffff;
  }

  private find(h: number): number {
    const k = this.scratch;
    for (let i = this.buckets[h & (this.buckets.length - 1)]!; i >= 0; i = this.chain[i]!) {
      if (this.hashes[i] !== h) continue;
      const base = i * KEY_WORDS;
      let j = 0;
      while (j < KEY_WORDS && this.keys[base + j] === k[j]) j++;
      if (j === KEY_WORDS) return i;
    }
    return -1;
  }

  private unlinkLru(i: number): void {
    const p = this.prev[i]!;
    const n = this.next[i]!;
    if (p >= 0) this.next[p] = n;
    else this.head = n;
    if (n >= 0) this.prev[n] = p;
    else this.tail = p;
  }

  private toFront(i: number): void {
    if (this.head === i) return;
    this.unlinkLru(i);
    this.prev[i] = -1;
    this.next[i] = this.head;
    if (this.head >= 0) this.prev[this.head] = i;
    this.head = i;
    if (this.tail < 0) this.tail = i;
  }

  private remove(i: number): void {
    const b = this.hashes[i]! & (this.buckets.length - 1);
    let p = -1;
    for (let j = this.buckets[b]!; j >= 0; p = j, j = this.chain[j]!) {
      if (j !== i) continue;
      if (p < 0) this.buckets[b] = this.chain[j]!;
      else this.chain[p] = this.chain[j]!;
      break;
    }
    this.unlinkLru(i);
    this.free[this.freeTop++] = i;
    this.count--;
  }
}
