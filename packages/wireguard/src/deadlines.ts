/**
 * An indexed binary min-heap of items keyed by their next deadline (ms): the device's
 * "when is the next timer" answer in O(1) and per-peer updates in O(log n), instead of
 * a scan of every peer after each batch (wireguard-go has one Go timer per peer timer;
 * a sans-IO device needs one next-deadline for the edge's single timer).
 */

/** What the heap stores on each item: its position (−1 = not in the heap) and key. */
export interface HeapSlot {
  heapIndex: number;
  heapKey: number;
}

/** Min-heap of {@link HeapSlot} items by `heapKey`. */
export class DeadlineHeap<T extends HeapSlot> {
  readonly #a: T[] = [];

  /** Number of items with a deadline. */
  get size(): number {
    return this.#a.length;
  }

  /** The earliest deadline, or undefined when empty. */
  peekKey(): number | undefined {
    return this.#a.length === 0 ? undefined : this.#a[0]!.heapKey;
  }

  /** The item with the earliest deadline, or undefined. */
  peek(): T | undefined {
    return this.#a[0];
  }

  /** Sets `item`'s deadline (undefined = none: removes it). */
  set(item: T, key: number | undefined): void {
    if (key === undefined) {
      this.remove(item);
      return;
    }
    const i = item.heapIndex;
    if (i < 0) {
      item.heapKey = key;
      item.heapIndex = this.#a.length;
      this.#a.push(item);
      this.#up(item.heapIndex);
      return;
    }
    const old = item.heapKey;
    if (old === key) return;
    item.heapKey = key;
    if (key < old) this.#up(i);
    else this.#down(i);
  }

  /** Removes `item` if present. */
  remove(item: T): void {
    const i = item.heapIndex;
    if (i < 0) return;
    const last = this.#a.pop()!;
    item.heapIndex = -1;
    if (i === this.#a.length) return;
    this.#a[i] = last;
    last.heapIndex = i;
    this.#down(i);
    this.#up(last.heapIndex);
  }

  #swap(i: number, j: number): void {
    const a = this.#a;
    const x = a[i]!;
    const y = a[j]!;
    a[i] = y;
    a[j] = x;
    x.heapIndex = j;
    y.heapIndex = i;
  }

  #up(i: number): void {
    const a = this.#a;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (a[parent]!.heapKey <= a[i]!.heapKey) return;
      this.#swap(i, parent);
      i = parent;
    }
  }

  #down(i: number): void {
    const a = this.#a;
    const n = a.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) return;
      const r = l + 1;
      const m = r < n && a[r]!.heapKey < a[l]!.heapKey ? r : l;
      if (a[i]!.heapKey <= a[m]!.heapKey) return;
      this.#swap(i, m);
      i = m;
    }
  }
}
