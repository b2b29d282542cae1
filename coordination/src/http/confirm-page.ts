/**
 * The interactive-registration confirm page's content: says exactly what confirming does
 * (issue 6, A10) — who will own the device (the person, by login name, or nobody when it
 * asks for tags), whether it is ephemeral, when its node key expires, and whether it
 * replaces the key of a device that is already registered. Tag requests the person may
 * not make are shown as an error without the confirm button, using the same tag
 * ownership check ({@link checkTagOwnership}) the registration itself runs.
 */
import { loginName, type Policy } from "@lattice/policy";
import type { Selectable } from "kysely";
import type { UsersTable } from "../db/schema.js";
import { ControlError } from "../errors.js";
import { parseJson } from "../services/context.js";
import { checkTagOwnership, normalizeTags } from "../services/tags.js";
import { roleOf } from "../services/users.js";
import type { NodeRow, RegistrationInput } from "../services/nodes.js";

/** Everything the page describes. */
export interface ConfirmFacts {
  input: RegistrationInput;
  machineKey: string;
  user: Selectable<UsersTable>;
  policy: Policy | null;
  /** The node already registered with this machine key, with its owner's login, if any. */
  existing: { row: NodeRow; ownerLogin: string | null } | null;
  /** Node key lifetime of user-owned devices, ms. */
  nodeKeyExpiryMs: number;
  /** Offline time after which an ephemeral device is removed, ms. */
  ephemeralTimeoutMs: number;
  now: number;
}

/** A duration in days, hours or minutes, rounded down ("180 days", "30 minutes"). */
export function humanDuration(ms: number): string {
  const units: [number, string][] = [
    [86_400_000, "day"],
    [3_600_000, "hour"],
    [60_000, "minute"],
    [1000, "second"],
  ];
  for (const [size, name] of units) {
    if (ms >= size) {
      const n = Math.floor(ms / size);
      return `${n} ${name}${n === 1 ? "" : "s"}`;
    }
  }
  return `${ms} ms`;
}

/**
 * The page's HTML fragment (escaped with `esc`) and whether the person may confirm.
 * `actions` is the confirm form, shown only when allowed.
 */
export function confirmBody(f: ConfirmFacts, esc: (s: string) => string, actions: string): { html: string; allowed: boolean } {
  const host = f.input.hostname || "unknown";
  const login = loginName(f.user);
  let tags: string[] = [];
  let problem: string | null = null;
  try {
    tags = normalizeTags(f.input.requestTags ?? [], "RequestTags");
    if (tags.length > 0) checkTagOwnership(f.policy, tags, { admin: false, user: { ...f.user, role: roleOf(f.user) } });
  } catch (e) {
    if (!(e instanceof ControlError)) throw e;
    problem = e.message;
  }
  const rows: string[] = [];
  if (tags.length > 0) {
    rows.push(
      `<li>Owner: <b>no user</b> — a tagged device with <b>${esc(tags.join(", "))}</b>. It is not yours: its access comes from the tags, and logging out of your account does not remove it.</li>`,
    );
    rows.push(`<li>Key expiry: <b>never</b> (tagged devices' keys do not expire)</li>`);
  } else {
    rows.push(`<li>Owner: <b>${esc(login)}</b> (you)</li>`);
    rows.push(`<li>Key expiry: the node key expires in <b>${esc(humanDuration(f.nodeKeyExpiryMs))}</b> (${esc(new Date(f.now + f.nodeKeyExpiryMs).toISOString().slice(0, 10))})</li>`);
  }
  rows.push(
    f.input.ephemeral
      ? `<li>Ephemeral: <b>yes</b> — removed automatically after ${esc(humanDuration(f.ephemeralTimeoutMs))} offline</li>`
      : `<li>Ephemeral: no</li>`,
  );
  if (f.existing) {
    const t = parseJson<string[]>(f.existing.row.tags, []);
    const was = t.length > 0 ? `tagged ${t.join(", ")}` : f.existing.ownerLogin ? `owned by ${f.existing.ownerLogin}` : "owned by nobody";
    rows.push(
      `<li class="err">This machine is already registered as <b>${esc(f.existing.row.given_name)}</b> (${esc(was)}); confirming replaces its key and gives it the ownership above.</li>`,
    );
  }
  const who = f.user.email ? `<b>${esc(login)}</b> (user ${esc(f.user.name)})` : `<b>${esc(login)}</b>`;
  const head = `<p>Add the machine <b>${esc(host)}</b> to the tailnet as ${who}?</p>`;
  const facts = `<ul>${rows.join("\n")}</ul>\n<p><small>Machine key: <code>${esc(f.machineKey)}</code></small></p>`;
  if (problem) return { html: `<div class="box">${head}${facts}<p class="err">${esc(problem)}</p></div>`, allowed: false };
  return { html: `<div class="box">${head}${facts}${actions}</div>`, allowed: true };
}
