/**
 * Cryptokey routing table: longest-prefix match over IPv4 and IPv6 prefixes, each owned
 * by one value (a peer). It is a path-compressed binary trie per family, the structure
 * wireguard-go and the kernel use: every node holds a masked prefix; nodes without a
 * value are pure branch points and always have two children. Addresses are kept as up
 * to four 32-bit words in plain number fields, so a lookup reads the packet bytes once
 * and walks the trie without allocating.
 */

import type { AllowedIp } from "./api.js";
import { formatIpv4, formatIpv6, maskBytes, parseIp } from "./ipaddr.js";

/** Thrown for a malformed prefix handed to {@link AllowedIps}. Stable `code`. */
export class AllowedIpError extends Error {
  /** Stable error code. */
  readonly code = "ALLOWED_IP_INVALID";
  override readonly name = "AllowedIpError";
}

class Node<T> {
  // Masked prefix words (int32 views of big-endian 32-bit words; IPv4 uses k0 only).
  k0 = 0;
  k1 = 0;
  k2 = 0;
  k3 = 0;
  // Per-word masks of the first `cidr` bits.
  m0 = 0;
  m1 = 0;
  m2 = 0;
  m3 = 0;
  /** Word index and mask of the bit right after the prefix (the branch bit). */
  bitWord: number;
  bitMask: number;
  child0: Node<T> | null = null;
  child1: Node<T> | null = null;
  parent: Node<T> | null = null;
  hasValue = false;
  value: T | undefined = undefined;

  constructor(
    readonly family: 4 | 6,
    readonly cidr: number,
    w: ArrayLike<number>,
  ) {
    const m = prefixMasks(cidr);
    this.m0 = m[0];
    this.m1 = m[1];
    this.m2 = m[2];
    this.m3 = m[3];
    this.k0 = w[0] & this.m0;
    this.k1 = w[1] & this.m1;
    this.k2 = w[2] & this.m2;
    this.k3 = w[3] & this.m3;
    this.bitWord = cidr >>> 5;
    this.bitMask = 1 << (31 - (cidr & 31));
  }

  word(i: number): number {
    return i === 0 ? this.k0 : i === 1 ? this.k1 : i === 2 ? this.k2 : this.k3;
  }
}

function prefixMasks(cidr: number): [number, number, number, number] {
  const out: [number, number, number, number] = [0, 0, 0, 0];
  for (let i = 0; i < 4; i++) {
    const keep = cidr - i * 32;
    out[i] = keep >= 32 ? -1 : keep <= 0 ? 0 : -1 << (32 - keep);
  }
  return out;
}

/** Number of leading bits two word vectors share (up to `width`). */
function commonBits(a: ArrayLike<number>, b: ArrayLike<number>, width: number): number {
  for (let i = 0; i < width >>> 5; i++) {
    const x = a[i] ^ b[i];
    if (x !== 0) return i * 32 + Math.clz32(x);
  }
  return width;
}

interface Trie<T> {
  root: Node<T> | null;
}

/**
 * A longest-prefix-match table from IP prefixes to values (WireGuard's allowed IPs).
 * Each prefix belongs to at most one value; inserting a prefix that exists moves it.
 * Host bits are masked off (`10.0.0.1/8` is stored and reported as `10.0.0.0/8`).
 * Values are compared by identity (`===`).
 */
export class AllowedIps<T> {
  private readonly v4: Trie<T> = { root: null };
  private readonly v6: Trie<T> = { root: null };
  /** Per value, its nodes in insertion order (re-inserting moves a prefix to the end). */
  private readonly byValue = new Map<T, Set<Node<T>>>();
  private count = 0;
  // Scratch words for insert/remove (instance state, never shared between tables).
  private readonly scratch = [0, 0, 0, 0];

  /** Number of prefixes in the table. */
  get size(): number {
    return this.count;
  }

  /** Inserts `prefix` for `value`; an existing identical prefix moves to `value`. */
  insert(prefix: AllowedIp, value: T): void {
    const w = this.prefixWords(prefix);
    this.insertWords(prefix.family, w, prefix.bits, value);
  }

  /** Inserts a prefix given as address bytes (4 or 16) and a length. */
  insertBytes(addr: Uint8Array, bits: number, value: T): void {
    const family = familyOfLength(addr.length);
    checkBits(family, bits);
    this.insertWords(family, this.bytesWords(addr), bits, value);
  }

  /** Removes `prefix` if, and only if, it is owned by `value`. Returns whether it did. */
  remove(prefix: AllowedIp, value: T): boolean {
    const w = this.prefixWords(prefix);
    const node = this.findExact(prefix.family === 4 ? this.v4 : this.v6, w, prefix.bits);
    if (node === null || !node.hasValue || node.value !== value) return false;
    this.removeNode(node);
    return true;
  }

  /** Removes every prefix owned by `value`; returns how many. */
  removeByValue(value: T): number {
    const set = this.byValue.get(value);
    if (set === undefined) return 0;
    const n = set.size;
    for (const node of [...set]) this.removeNode(node);
    return n;
  }

  /** Removes everything. */
  clear(): void {
    this.v4.root = null;
    this.v6.root = null;
    this.byValue.clear();
    this.count = 0;
  }

  /** The prefixes owned by `value`, masked, in insertion order. */
  entriesFor(value: T): AllowedIp[] {
    const set = this.byValue.get(value);
    if (set === undefined) return [];
    const out: AllowedIp[] = [];
    const b = new Uint8Array(16);
    for (const n of set) {
      const len = n.family === 4 ? 4 : 16;
      for (let i = 0; i < len; i++) b[i] = (n.word(i >>> 2) >>> (24 - 8 * (i & 3))) & 0xff;
      out.push({
        address: n.family === 4 ? formatIpv4(b) : formatIpv6(b),
        family: n.family,
        bits: n.cidr,
      });
    }
    return out;
  }

  /**
   * Trie nodes, branch points included (walks the tries: for tests and memory checks).
   * Path compression keeps it at most 2 × {@link size}.
   */
  nodeCount(): number {
    let n = 0;
    const stack: Node<T>[] = [];
    if (this.v4.root !== null) stack.push(this.v4.root);
    if (this.v6.root !== null) stack.push(this.v6.root);
    while (stack.length > 0) {
      const node = stack.pop()!;
      n++;
      if (node.child0 !== null) stack.push(node.child0);
      if (node.child1 !== null) stack.push(node.child1);
    }
    return n;
  }

  /** The values that own at least one prefix. */
  values(): IterableIterator<T> {
    return this.byValue.keys();
  }

  /**
   * Longest-prefix match of a 4- or 16-byte address. Returns undefined when nothing
   * matches or the length is neither 4 nor 16. Allocation-free.
   */
  lookup(addr: Uint8Array): T | undefined {
    if (addr.length === 4) return this.lookupAt(addr, 0, 4);
    if (addr.length === 16) return this.lookupAt(addr, 0, 6);
    return undefined;
  }

  /**
   * Longest-prefix match of the address stored at `buf[offset..]` (4 bytes for family 4,
   * 16 for family 6), e.g. a packet's source or destination field, without slicing.
   * Returns undefined when nothing matches or the buffer is too short. Allocation-free.
   */
  lookupAt(buf: Uint8Array, offset: number, family: 4 | 6): T | undefined {
    const o = offset;
    let a0: number;
    let a1 = 0;
    let a2 = 0;
    let a3 = 0;
    let node: Node<T> | null;
    let width: number;
    if (family === 4) {
      if (o < 0 || o + 4 > buf.length) return undefined;
      a0 = (buf[o] << 24) | (buf[o + 1] << 16) | (buf[o + 2] << 8) | buf[o + 3];
      node = this.v4.root;
      width = 32;
    } else {
      if (o < 0 || o + 16 > buf.length) return undefined;
      a0 = (buf[o] << 24) | (buf[o + 1] << 16) | (buf[o + 2] << 8) | buf[o + 3];
      a1 = (buf[o + 4] << 24) | (buf[o + 5] << 16) | (buf[o + 6] << 8) | buf[o + 7];
      a2 = (buf[o + 8] << 24) | (buf[o + 9] << 16) | (buf[o + 10] << 8) | buf[o + 11];
      a3 = (buf[o + 12] << 24) | (buf[o + 13] << 16) | (buf[o + 14] << 8) | buf[o + 15];
      node = this.v6.root;
      width = 128;
    }
    let found: T | undefined;
    if (family === 4) {
      // IPv4 only uses the first word.
      while (node !== null && ((a0 ^ node.k0) & node.m0) === 0) {
        if (node.hasValue) found = node.value;
        if (node.cidr === 32) break;
        node = (a0 & node.bitMask) !== 0 ? node.child1 : node.child0;
      }
      return found;
    }
    while (node !== null) {
      if (
        ((a0 ^ node.k0) & node.m0) !== 0 ||
        ((a1 ^ node.k1) & node.m1) !== 0 ||
        ((a2 ^ node.k2) & node.m2) !== 0 ||
        ((a3 ^ node.k3) & node.m3) !== 0
      ) {
        break;
      }
      if (node.hasValue) found = node.value;
      if (node.cidr === width) break;
      const bw = node.bitWord;
      const word = bw === 0 ? a0 : bw === 1 ? a1 : bw === 2 ? a2 : a3;
      node = (word & node.bitMask) !== 0 ? node.child1 : node.child0;
    }
    return found;
  }

  private prefixWords(p: AllowedIp): number[] {
    const ip = parseIp(p.address);
    if (ip === null || ip.family !== p.family) {
      throw new AllowedIpError(`invalid IPv${p.family} address ${JSON.stringify(p.address)}`);
    }
    checkBits(p.family, p.bits);
    maskBytes(ip.bytes, p.bits);
    return this.bytesWords(ip.bytes);
  }

  private bytesWords(b: Uint8Array): number[] {
    const w = this.scratch;
    w[0] = w[1] = w[2] = w[3] = 0;
    for (let i = 0; i < b.length; i += 4) {
      w[i >>> 2] = (b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3];
    }
    return w;
  }

  private findExact(trie: Trie<T>, w: number[], cidr: number): Node<T> | null {
    let node = trie.root;
    while (node !== null && node.cidr <= cidr && this.matches(node, w)) {
      if (node.cidr === cidr) return node;
      node = bitAt(w, node.cidr) ? node.child1 : node.child0;
    }
    return null;
  }

  private matches(node: Node<T>, w: number[]): boolean {
    return (
      ((w[0] ^ node.k0) & node.m0) === 0 &&
      ((w[1] ^ node.k1) & node.m1) === 0 &&
      ((w[2] ^ node.k2) & node.m2) === 0 &&
      ((w[3] ^ node.k3) & node.m3) === 0
    );
  }

  private insertWords(family: 4 | 6, w: number[], cidr: number, value: T): void {
    const trie = family === 4 ? this.v4 : this.v6;
    const width = family === 4 ? 32 : 128;
    let parent: Node<T> | null = null;
    let node = trie.root;
    while (node !== null && node.cidr <= cidr && this.matches(node, w)) {
      if (node.cidr === cidr) {
        this.setValue(node, value);
        return;
      }
      parent = node;
      node = bitAt(w, node.cidr) ? node.child1 : node.child0;
    }
    const fresh = new Node<T>(family, cidr, w);
    this.setValue(fresh, value);
    if (node === null) {
      this.attach(trie, parent, fresh, w);
      return;
    }
    // `node` diverges from the new prefix or lies below it.
    const down = node;
    const downWords = [down.k0, down.k1, down.k2, down.k3];
    const common = Math.min(commonBits(downWords, w, width), cidr);
    if (common === cidr) {
      // The new prefix covers `down`: it goes in between.
      this.attach(trie, parent, fresh, w);
      setChild(fresh, bitAt(downWords, cidr), down);
      return;
    }
    const branch = new Node<T>(family, common, w);
    this.attach(trie, parent, branch, w);
    setChild(branch, bitAt(downWords, common), down);
    setChild(branch, bitAt(w, common), fresh);
  }

  /** Puts `node` where the walk for `w` leaves `parent` (or at the root). */
  private attach(trie: Trie<T>, parent: Node<T> | null, node: Node<T>, w: number[]): void {
    if (parent === null) {
      trie.root = node;
      node.parent = null;
    } else {
      setChild(parent, bitAt(w, parent.cidr), node);
    }
  }

  private setValue(node: Node<T>, value: T): void {
    if (node.hasValue) {
      this.byValue.get(node.value as T)?.delete(node);
      this.dropEmpty(node.value as T);
    } else {
      this.count++;
    }
    node.hasValue = true;
    node.value = value;
    let set = this.byValue.get(value);
    if (set === undefined) {
      set = new Set();
      this.byValue.set(value, set);
    }
    set.add(node);
  }

  private dropEmpty(value: T): void {
    const set = this.byValue.get(value);
    if (set !== undefined && set.size === 0) this.byValue.delete(value);
  }

  private removeNode(node: Node<T>): void {
    const value = node.value as T;
    this.byValue.get(value)?.delete(node);
    this.dropEmpty(value);
    this.count--;
    node.hasValue = false;
    node.value = undefined;
    if (node.child0 !== null && node.child1 !== null) return; // stays as a branch point
    const trie = node.family === 4 ? this.v4 : this.v6;
    const child = node.child0 ?? node.child1;
    const parent = node.parent;
    this.replace(trie, parent, node, child);
    if (child !== null || parent === null || parent.hasValue) return;
    // `parent` is a branch point left with one child: splice it out too.
    const other = parent.child0 ?? parent.child1;
    this.replace(trie, parent.parent, parent, other);
  }

  private replace(trie: Trie<T>, parent: Node<T> | null, old: Node<T>, next: Node<T> | null): void {
    if (next !== null) next.parent = parent;
    if (parent === null) trie.root = next;
    else if (parent.child0 === old) parent.child0 = next;
    else parent.child1 = next;
    old.parent = null;
    old.child0 = null;
    old.child1 = null;
  }
}

function setChild<T>(parent: Node<T>, bit: number, child: Node<T>): void {
  if (bit) parent.child1 = child;
  else parent.child0 = child;
  child.parent = parent;
}

function bitAt(w: ArrayLike<number>, pos: number): number {
  return (w[pos >>> 5] >>> (31 - (pos & 31))) & 1;
}

function familyOfLength(len: number): 4 | 6 {
  if (len === 4) return 4;
  if (len === 16) return 6;
  throw new AllowedIpError(`address must be 4 or 16 bytes, got ${len}`);
}

function checkBits(family: 4 | 6, bits: number): void {
  const max = family === 4 ? 32 : 128;
  if (!Number.isInteger(bits) || bits < 0 || bits > max) {
    throw new AllowedIpError(`invalid prefix length ${bits} for IPv${family}`);
  }
}
