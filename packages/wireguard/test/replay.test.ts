import { describe, expect, test } from "vitest";
import fc from "fast-check";
import { REPLAY_WINDOW_SIZE, ReplayFilter } from "../src/replay.js";

const REJECT = (1n << 64n) - (1n << 13n) - 1n;

/** The three entry points must agree; each test drives one of them through `check`. */
type Mode = "bigint" | "number" | "hilo";
function checker(f: ReplayFilter, mode: Mode) {
  return (n: bigint): boolean => {
    if (mode === "number" && n <= BigInt(Number.MAX_SAFE_INTEGER)) return f.validateNumber(Number(n));
    if (mode === "hilo" && n < 1n << 64n) return f.validateHiLo(Number(n >> 32n), Number(n & 0xffffffffn));
    return f.validate(n);
  };
}

describe("ReplayFilter", () => {
  test("window is at least the 2048 bits WireGuard requires", () => {
    expect(REPLAY_WINDOW_SIZE).toBe(8160);
    expect(ReplayFilter.REJECT_AFTER_MESSAGES).toBe(REJECT);
  });

  // The sequence of the kernel's selftest/counter.c (also ported in wireguard-go's replay_test.go).
  for (const mode of ["bigint", "number", "hilo"] as const) {
    test(`kernel selftest/counter.c sequence (${mode})`, () => {
      const f = new ReplayFilter();
      const check = checker(f, mode);
      const W = BigInt(REPLAY_WINDOW_SIZE);
      const T_LIM = W + 1n;
      let n = 0;
      const T = (c: bigint, expected: boolean) => {
        n++;
        expect(check(c), `step ${n}: counter ${c}`).toBe(expected);
      };
      const INIT = () => {
        f.reset();
        n = 0;
      };
      INIT();
      T(0n, true); /*  1 */
      T(1n, true); /*  2 */
      T(1n, false); /*  3 */
      T(9n, true); /*  4 */
      T(8n, true); /*  5 */
      T(7n, true); /*  6 */
      T(7n, false); /*  7 */
      T(T_LIM, true); /*  8 */
      T(T_LIM - 1n, true); /*  9 */
      T(T_LIM - 1n, false); /* 10 */
      T(T_LIM - 2n, true); /* 11 */
      T(2n, true); /* 12 */
      T(2n, false); /* 13 */
      T(T_LIM + 16n, true); /* 14 */
      T(3n, false); /* 15 */
      T(T_LIM + 16n, false); /* 16 */
      T(T_LIM * 4n, true); /* 17 */
      T(T_LIM * 4n - (T_LIM - 1n), true); /* 18 */
      T(10n, false); /* 19 */
      T(T_LIM * 4n - T_LIM, false); /* 20 */
      T(T_LIM * 4n - (T_LIM + 1n), false); /* 21 */
      T(T_LIM * 4n - (T_LIM - 2n), true); /* 22 */
      T(T_LIM * 4n + 1n - T_LIM, false); /* 23 */
      T(0n, false); /* 24 */
      T(REJECT, false); /* 25 */
      T(REJECT - 1n, true); /* 26 */
      T(REJECT, false); /* 27 */
      T(REJECT - 1n, false); /* 28 */
      T(REJECT - 2n, true); /* 29 */
      T(REJECT + 1n, false); /* 30 */
      T(REJECT + 2n, false); /* 31 */
      T(REJECT - 2n, false); /* 32 */
      T(REJECT - 3n, true); /* 33 */
      T(0n, false); /* 34 */

      INIT();
      for (let i = 1n; i <= W; i++) T(i, true);
      T(0n, true);
      T(0n, false);

      INIT();
      for (let i = 2n; i <= W + 1n; i++) T(i, true);
      T(1n, true);
      T(0n, false);

      INIT();
      for (let i = W + 1n; i-- > 0n; ) T(i, true);

      INIT();
      for (let i = W + 2n; i-- > 1n; ) T(i, true);
      T(0n, false);

      INIT();
      for (let i = W + 1n; i-- > 1n; ) T(i, true);
      T(W + 1n, true);
      T(0n, false);

      INIT();
      for (let i = W + 1n; i-- > 1n; ) T(i, true);
      T(0n, true);
      T(W + 1n, true);
    });
  }

  test("negative and non-integer counters are refused", () => {
    const f = new ReplayFilter();
    expect(f.validate(-1n)).toBe(false);
    expect(f.validateNumber(-1)).toBe(false);
    expect(f.validateNumber(1.5)).toBe(false);
    expect(f.validateNumber(2 ** 53)).toBe(false);
    expect(f.validateNumber(NaN)).toBe(false);
    expect(f.validate(1n << 64n)).toBe(false);
  });

  test("crossing 2^53 switches to bigint arithmetic without losing state", () => {
    const f = new ReplayFilter();
    const big = BigInt(Number.MAX_SAFE_INTEGER);
    expect(f.validate(big - 5n)).toBe(true);
    expect(f.validate(big + 3n)).toBe(true); // now in bigint mode
    expect(f.validate(big - 5n)).toBe(false);
    expect(f.validateNumber(Number(big - 4n))).toBe(true);
    expect(f.validateNumber(Number(big - 4n))).toBe(false);
    expect(f.validateHiLo(Number((big + 3n) >> 32n), Number((big + 3n) & 0xffffffffn))).toBe(false);
    f.reset();
    expect(f.validateNumber(5)).toBe(true);
  });

  test("property: agrees with a naive set-and-window reference, in all three modes", () => {
    const W = BigInt(REPLAY_WINDOW_SIZE);
    const bases = [0n, 1n << 31n, (1n << 53n) - 9000n, 1n << 60n, REJECT - 20000n];
    const step = fc.oneof(
      { weight: 5, arbitrary: fc.integer({ min: -40, max: 200 }) },
      { weight: 2, arbitrary: fc.integer({ min: -9000, max: 9000 }) },
      { weight: 1, arbitrary: fc.integer({ min: -100_000, max: 100_000 }) },
    );
    fc.assert(
      fc.property(fc.constantFrom(...bases), fc.array(step, { maxLength: 400 }), fc.constantFrom<Mode>("bigint", "number", "hilo"), (base, steps, mode) => {
        const f = new ReplayFilter();
        const check = checker(f, mode);
        const seen = new Set<bigint>();
        let last = 0n;
        let c = base;
        for (const s of steps) {
          c += BigInt(s);
          if (c < 0n) c = 0n;
          const expected = c < REJECT && !seen.has(c) && (c > last || last - c <= W);
          expect(check(c), `counter ${c}`).toBe(expected);
          if (expected) {
            seen.add(c);
            if (c > last) last = c;
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
