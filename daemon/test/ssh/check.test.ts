// The check-mode loop (Tailscale's resolveNextAction): banners for each message, following
// HoldAndDelegate hops, retry with backoff on fetch failures, overall timeout, abort.
import { describe, expect, it } from "vitest";
import type { SSHAction } from "@lattice/types";
import { runCheck, type CheckDeps } from "../../src/ssh/check.js";

function deps(responses: (SSHAction | Error)[], sleeps: number[] = []): CheckDeps & { banners: string[]; urls: string[] } {
  const banners: string[] = [];
  const urls: string[] = [];
  return {
    banners,
    urls,
    fetchCheck: async (url) => {
      urls.push(url);
      const r = responses.shift();
      if (!r) return new Promise(() => undefined);
      if (r instanceof Error) throw r;
      return r;
    },
    banner: (t) => banners.push(t),
    expand: (u) => u.replace("$X", "x"),
    sleep: async (ms) => {
      sleeps.push(ms);
    },
  };
}

describe("runCheck", () => {
  it("shows each message, follows hops (expanded), accepts", async () => {
    const d = deps([{ message: "visit https://c/a/1", holdAndDelegate: "https://c/wait/$X" }, { accept: true, sessionDuration: 5 }]);
    const r = await runCheck("https://c/start/$X", d, { signal: new AbortController().signal });
    expect(r).toEqual({ accept: true, action: { accept: true, sessionDuration: 5 } });
    expect(d.banners).toEqual(["visit https://c/a/1"]);
    expect(d.urls).toEqual(["https://c/start/x", "https://c/wait/x"]);
  });

  it("retries failed fetches with doubling backoff capped at 10 s", async () => {
    const sleeps: number[] = [];
    const errs = Array.from({ length: 6 }, () => new Error("down"));
    const d = deps([...errs, { reject: true, message: "denied" }], sleeps);
    const r = await runCheck("u", d, { signal: new AbortController().signal });
    expect(r).toEqual({ accept: false, message: "denied" });
    expect(sleeps).toEqual([1000, 2000, 4000, 8000, 10000, 10000]);
  });

  it("times out with a clear message when nobody decides", async () => {
    const r = await runCheck("u", deps([]), { signal: new AbortController().signal, timeoutMs: 50 });
    expect(r).toEqual({ accept: false, message: "check not approved within 0 s" });
  });

  it("ends when the connection goes away", async () => {
    const ac = new AbortController();
    const p = runCheck("u", deps([]), { signal: ac.signal });
    ac.abort();
    expect(await p).toEqual({ accept: false, message: "connection closed during check" });
  });

  it("an action without a decision is a rejection; a looping delegate is cut off", async () => {
    expect(await runCheck("u", deps([{}]), { signal: new AbortController().signal })).toMatchObject({ accept: false });
    const loop = Array.from({ length: 10 }, () => ({ holdAndDelegate: "u" }));
    expect(await runCheck("u", deps(loop), { signal: new AbortController().signal, maxHops: 3 })).toEqual({
      accept: false,
      message: "check did not reach a decision",
    });
  });
});
