/** A FIFO with O(1) push/shift and an optional drop-from-head bound. */
export class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(v: T): void {
    this.items.push(v);
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const v = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head > 64 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return v;
  }

  clear(): void {
    this.items = [];
    this.head = 0;
  }
}

/** Min-heap of (time, value); stale entries are the caller's to skip. */
export class DeadlineHeap<T> {
  private times: number[] = [];
  private values: T[] = [];

  get size(): number {
    return this.times.length;
  }

  peekTime(): number | null {
    return this.times.length ? this.times[0]! : null;
  }

  push(time: number, value: T): void {
    const t = this.times;
    const v = this.values;
    let i = t.length;
    t.push(time);
    v.push(value);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (t[p]! <= time) break;
      t[i] = t[p]!;
      v[i] = v[p]!;
      i = p;
    }
    t[i] = time;
    v[i] = value;
  }

  /** Removes and returns the earliest value if its time is ≤ `now`. */
  popDue(now: number): T | undefined {
    const t = this.times;
    const v = this.values;
    if (!t.length || t[0]! > now) return undefined;
    const top = v[0]!;
    const lastT = t.pop()!;
    const lastV = v.pop()!;
    const n = t.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const c = l + 1 < n && t[l + 1]! < t[l]! ? l + 1 : l;
        if (t[c]! >= lastT) break;
        t[i] = t[c]!;
        v[i] = v[c]!;
        i = c;
      }
      t[i] = lastT;
      v[i] = lastV;
    }
    return top;
  }
}
