/**
 * The Linux router's executor: runs router-plan.ts's commands with an injected runner
 * (production: `execFile`, argv only, never a shell; 5 s timeout each) and remembers what
 * was applied, so each {@link Router.set} only adds and removes the difference.
 *
 * Failures: an IPv6 command failing only warns, once until IPv6 works again (hosts with
 * IPv6 disabled); an IPv4 add
 * failing makes `set` reject with LatticedError `router_setup` after the remaining steps
 * ran (the item still counts as applied, so a later `set`/`close` removes what part of it
 * got in); removals never fail (something already gone is what removal wants).
 */
import { execFile } from "node:child_process";
import { LatticedError } from "./errors.js";
import { RULE_PREFS, cleanupCmds, itemCmds, planRouter, type Cmd, type RouterConfig } from "./router-plan.js";

/** Runs argv[0] with argv[1..]; rejects with stderr as the message (the executor names the command). */
export type CmdRunner = (argv: readonly string[]) => Promise<void>;

/** The production runner (PATH lookup, no shell, 5 s timeout). */
export const runCmd: CmdRunner = (argv) =>
  new Promise((resolve, reject) => {
    execFile(argv[0]!, argv.slice(1), { timeout: 5_000 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(String(stderr).trim() || err.message));
      else resolve();
    });
  });

/** Runs argv[0] with argv[1..] and resolves with its stdout. */
export type CmdReader = (argv: readonly string[]) => Promise<string>;

/** The production reader (PATH lookup, no shell, 5 s timeout, 1 MiB of output). */
export const readCmd: CmdReader = (argv) =>
  new Promise((resolve, reject) => {
    execFile(argv[0]!, argv.slice(1), { timeout: 5_000, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(String(stderr).trim() || err.message));
      else resolve(String(stdout));
    });
  });

/** How often latticed checks that its policy rules are still there (Tailscale: rate-limited to 5 s). */
export const RULE_CHECK_MS = 5_000;

/** Dependencies of {@link Router}. */
export interface RouterDeps {
  /** The TUN's name. */
  ifname: string;
  run: CmdRunner;
  /** For {@link Router.repairRules}; absent: rules are never checked. */
  read?: CmdReader;
  warn: (msg: string) => void;
  debug?: (msg: string) => void;
}

/** Applies {@link RouterConfig}s to the host, one at a time, in order. */
export class Router {
  #applied: string[] = [];
  #chain: Promise<unknown> = Promise.resolve();
  /** An IPv6 failure was reported (later ones are not, until an IPv6 command works again). */
  #v6Warned = false;

  constructor(private readonly d: RouterDeps) {}

  /** The items applied (router-plan.ts keys, add order). */
  get applied(): readonly string[] {
    return this.#applied;
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.#chain.then(fn);
    this.#chain = p.catch(() => undefined);
    return p;
  }


  /** Removes whatever a crashed latticed left (rules at our prefs, table 52, our chains). Never rejects. */
  cleanup(): Promise<void> {
    return this.#serial(async () => {
      for (const c of cleanupCmds()) {
        for (let i = 0; i < (c.repeat ? 64 : 1); i++) {
          try {
            await this.d.run(c.argv);
          } catch {
            break;
          }
        }
      }
      this.#applied = [];
    });
  }

  /** Brings the host to `cfg` (null: remove everything of ours). Rejects `router_setup` (see the file comment). */
  set(cfg: RouterConfig | null): Promise<void> {
    return this.#serial(async () => {
      const failed: string[] = [];
      const applied = [...this.#applied];
      for (const step of planRouter(this.#applied, cfg, this.d.ifname)) {
        if (step.op === "del") {
          for (const c of step.cmds) await this.#runQuiet(c);
          applied.splice(applied.indexOf(step.item), 1);
          continue;
        }
        for (const c of step.cmds) {
          const err = await this.#runQuiet(c);
          if (err === null) {
            if (c.v6) this.#v6Warned = false;
            continue;
          }
          if (!c.v6) failed.push(err);
          else if (!this.#v6Warned) {
            this.#v6Warned = true;
            this.d.warn(`IPv6 routing not set up (IPv6 disabled?): ${err}`);
          }
        }
        applied.push(step.item);
      }
      this.#applied = applied;
      if (failed.length > 0) throw new LatticedError("router_setup", `configuring routes failed: ${failed.join("; ")}`);
    });
  }

  /**
   * Re-adds policy rules of ours that someone else deleted (systemd-networkd, for one,
   * removes "foreign" rules when it reconfigures a link), as Tailscale does. Resolves with
   * the rules re-added (`ip -4 rule add pref 5270 table 52`, …); never rejects.
   */
  repairRules(): Promise<string[]> {
    const read = this.d.read;
    if (!read) return Promise.resolve([]);
    return this.#serial(async () => {
      const readded: string[] = [];
      for (const f of [4, 6] as const) {
        if (!this.#applied.includes(`rules${f}`)) continue;
        let shown: string;
        try {
          shown = await read(["ip", `-${f}`, "rule", "show"]);
        } catch {
          continue;
        }
        const cmds = itemCmds(`rules${f}`, false, this.d.ifname);
        for (const [i, pref] of RULE_PREFS.entries()) {
          if (new RegExp(`^${pref}:`, "m").test(shown)) continue;
          if ((await this.#runQuiet(cmds[i]!)) === null) readded.push(cmds[i]!.argv.join(" "));
        }
      }
      return readded;
    });
  }

  async #runQuiet(c: Cmd): Promise<string | null> {
    try {
      await this.d.run(c.argv);
      return null;
    } catch (e) {
      const msg = `${c.argv.join(" ")}: ${(e as Error).message}`;
      this.d.debug?.(msg);
      return msg;
    }
  }
}
