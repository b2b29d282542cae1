/** Tag validation and tagOwners checks against the current policy. */
import type { Policy } from "@lattice/policy";
import { ControlError, ValidationError } from "../errors.js";

const TAG_RE = /^tag:[a-zA-Z0-9][a-zA-Z0-9_-]*$/;

/** Validates tag syntax; returns the sorted, de-duplicated list. */
export function normalizeTags(tags: readonly string[], field = "tags"): string[] {
  for (const t of tags) {
    if (!TAG_RE.test(t)) throw new ValidationError(`${field}: ${JSON.stringify(t)} is not a tag (want tag:name)`);
  }
  return [...new Set(tags)].sort();
}

/** Who is asking for tags: an administrator (socket/API key) or a user by login name. */
export type TagRequester = { admin: true } | { admin: false; login: string; name: string };

function userMatches(owner: string, login: string, name: string): boolean {
  if (owner === login) return true;
  // "alice@" matches a user named alice; "alice@domain" matches its local part when the user has no e-mail.
  if (owner.endsWith("@") && owner.slice(0, -1) === name) return true;
  return owner.split("@")[0] === name && login === `${name}@`;
}

/**
 * Throws unless every tag is declared in the policy's tagOwners and, for a user,
 * the user owns it (directly, through a group, or through an owning tag it owns).
 */
export function checkTagOwnership(policy: Policy | null, tags: readonly string[], who: TagRequester): void {
  for (const tag of tags) {
    const owners = policy?.tagOwners.get(tag);
    if (!owners) {
      throw new ControlError("tag_not_defined", `tag ${JSON.stringify(tag)} is not defined in the policy's tagOwners`, 403);
    }
    if (who.admin) continue;
    if (!ownsTag(policy!, tag, who.login, who.name, new Set())) {
      throw new ControlError("tag_not_owned", `user ${JSON.stringify(who.login)} is not an owner of ${JSON.stringify(tag)} (tagOwners)`, 403);
    }
  }
}

function ownsTag(policy: Policy, tag: string, login: string, name: string, seen: Set<string>): boolean {
  if (seen.has(tag)) return false;
  seen.add(tag);
  for (const owner of policy.tagOwners.get(tag) ?? []) {
    if (owner.startsWith("group:")) {
      if ((policy.groups.get(owner) ?? []).some((m) => userMatches(m, login, name))) return true;
    } else if (owner.startsWith("tag:")) {
      if (ownsTag(policy, owner, login, name, seen)) return true;
    } else if (owner.startsWith("autogroup:")) {
      continue;
    } else if (userMatches(owner, login, name)) {
      return true;
    }
  }
  return false;
}
