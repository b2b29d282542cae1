/**
 * Figures for the benchmark: a memory tracker (process.memoryUsage sampled at phase
 * boundaries and inside long loops, plus the kernel's max RSS from
 * process.resourceUsage()) and the final figure/goal/ratio table.
 */

const MiB = 1024 * 1024;

/** Formats bytes as MiB with one decimal. */
export function mib(bytes) {
  return `${(bytes / MiB).toFixed(1)} MiB`;
}

/** Formats milliseconds. */
export function ms(v) {
  return v >= 100 ? `${v.toFixed(0)} ms` : `${v.toFixed(1)} ms`;
}

/** Tracks peak RSS / heap over the run. `sample()` is cheap enough to call every ~1000 iterations. */
export class MemoryTracker {
  constructor() {
    this.peakRss = 0;
    this.peakHeapUsed = 0;
    this.peakHeapTotal = 0;
    this.peakExternal = 0;
    this.samples = [];
  }

  /** Takes a sample; with a label it is also kept for the per-phase listing. */
  sample(label) {
    const m = process.memoryUsage();
    if (m.rss > this.peakRss) this.peakRss = m.rss;
    if (m.heapUsed > this.peakHeapUsed) this.peakHeapUsed = m.heapUsed;
    if (m.heapTotal > this.peakHeapTotal) this.peakHeapTotal = m.heapTotal;
    if (m.external + m.arrayBuffers > this.peakExternal) this.peakExternal = m.external + m.arrayBuffers;
    if (label) this.samples.push({ label, rss: m.rss, heapUsed: m.heapUsed });
    return m;
  }

  /** The kernel's high-water mark of resident memory for this process (bytes), as `/usr/bin/time -v` reports it. */
  maxRss() {
    return process.resourceUsage().maxRSS * 1024;
  }
}

/**
 * Prints the final table. rows: [{ figure, value, unit: "ms"|"bytes"|"", goal (same unit
 * or null), note }]. Ratio = value / goal (< 1 meets the goal).
 */
export function printTable(rows, out = console.log) {
  const fmt = (v, unit) => (v == null ? "-" : unit === "ms" ? ms(v) : unit === "bytes" ? mib(v) : String(v));
  const cells = rows.map((r) => [
    r.figure,
    fmt(r.value, r.unit),
    r.goal == null ? "-" : fmt(r.goal, r.unit),
    r.goal == null || r.value == null ? "-" : (r.value / r.goal).toFixed(2),
    r.goal == null || r.value == null ? "" : r.value <= r.goal ? "ok" : "OVER",
  ]);
  const head = ["figure", "value", "goal", "ratio", ""];
  const w = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c) => c.map((x, i) => (i === 0 ? x.padEnd(w[i]) : x.padStart(w[i]))).join("  ");
  out(line(head));
  out(w.map((n) => "-".repeat(n)).join("  "));
  for (const c of cells) out(line(c));
  for (const r of rows) if (r.note) out(`  ${r.figure}: ${r.note}`);
}
