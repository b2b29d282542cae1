/**
 * Validation of SSH rules that needs more than one field: which sources may reach which
 * destinations, and what a `users` entry may be. Follows Tailscale's rules for the `ssh`
 * section (kb/1193 "Tailscale SSH", kb/1337 "ssh"): a user's own devices are reachable
 * only by that user (as a user destination or autogroup:self); tagged sources never reach
 * user-owned devices. headscale's policy/v2 validation, checked against captures of
 * Tailscale's control plane, states the same rules.
 */
import { PolicyError, type Pos } from "./errors.js";
import type { Alias } from "./model.js";

const KNOWN_AUTOGROUPS = new Set(["member", "tagged", "self", "internet", "danger-all", "nonroot", "admin", "owner"]);

function fail(detail: string, a: Alias): never {
  throw new PolicyError("invalid-value", detail, a.pos, a.field, a.text);
}

/**
 * Throws PolicyError (naming the destination's field, value and position) when `src`
 * may not reach `dst`:
 * - a user destination needs the sources to be exactly that one user (anything else, a
 *   group, autogroup:member, another user, a tag, would open the user's devices, root
 *   included, to other identities: use autogroup:self);
 * - tags / autogroup:tagged as sources reach neither a user, nor autogroup:self, nor
 *   autogroup:member (user-owned devices).
 */
export function checkSshSrcDst(src: readonly Alias[], dst: readonly Alias[]): void {
  const tagged = src.find((s) => s.kind === "tag" || (s.kind === "autogroup" && s.name === "tagged"));
  const users = new Set(src.filter((s) => s.kind === "user").map((s) => (s as { name: string }).name));
  const others = src.filter((s) => s.kind !== "user" && s !== tagged);
  for (const d of dst) {
    if (d.kind === "user") {
      if (tagged) fail(`tags in an SSH source (${JSON.stringify(tagged.text)}) cannot reach user-owned devices; use tags or autogroup:tagged as destinations`, d);
      if (others.length > 0 || users.size !== 1 || !users.has(d.name)) {
        fail("a user as SSH destination requires the source to be that same user only; use autogroup:self for same-user access", d);
      }
    } else if (d.kind === "autogroup" && (d.name === "self" || d.name === "member") && tagged) {
      fail(`tags in an SSH source (${JSON.stringify(tagged.text)}) cannot reach ${d.text} (user-owned devices)`, d);
    }
  }
}

/**
 * Throws PolicyError when an SSH `users` entry is not a login name Tailscale accepts:
 * empty, with leading/trailing whitespace, whitespace or control characters, "*", or an
 * autogroup that does not exist.
 */
export function checkSshUser(u: { value: string; pos: Pos; field: string }): void {
  const bad = (detail: string): never => {
    throw new PolicyError("invalid-value", detail, u.pos, u.field, u.value);
  };
  const v = u.value;
  if (v === "") bad("an SSH user cannot be empty");
  if (v !== v.trim()) bad("an SSH user cannot have leading or trailing whitespace");
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(v)) bad("an SSH user cannot contain control characters");
  if (v === "*") bad(`user "*" is not valid (use autogroup:nonroot for any user but root)`);
  // Tailscale takes other entries literally as login names, known autogroups too (the
  // captured corpus: autogroup:member, localpart:foo); an autogroup that does not exist
  // is a typo (autogroup:nonrot) that would silently grant nothing: rejected.
  if (v.startsWith("autogroup:") && !KNOWN_AUTOGROUPS.has(v.slice("autogroup:".length))) {
    bad(`unknown autogroup ${JSON.stringify(v)} (for any user but root: autogroup:nonroot)`);
  }
  if (/\s/.test(v)) bad("an SSH user cannot contain whitespace");
}
