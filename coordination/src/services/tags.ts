/** Tag validation and tagOwners checks against the current policy. */
import { isAdminRole, loginName, userMatchesToken, type Policy, type UserRole } from "@lattice/policy";
import { ControlError, ValidationError } from "../errors.js";

const TAG_RE = /^tag:[a-zA-Z0-9][a-zA-Z0-9_-]*$/;

/** Validates tag syntax; returns the sorted, de-duplicated list. */
export function normalizeTags(tags: readonly string[], field = "tags"): string[] {
  for (const t of tags) {
    if (!TAG_RE.test(t)) throw new ValidationError(`${field}: ${JSON.stringify(t)} is not a tag (want tag:name)`);
  }
  return [...new Set(tags)].sort();
}

/** A user as tag ownership sees it: identity (login name from name + e-mail) and role. */
export interface TagUser {
  name: string;
  email: string | null;
  role: UserRole;
}

/** Who is asking for tags: an administrator (socket/API key) or a user. */
export type TagRequester = { admin: true } | { admin: false; user: TagUser };

/**
 * Throws unless every tag is declared in the policy's tagOwners and, for a user, the user
 * owns it: named by login name ({@link userMatchesToken}, the identity rule the compiler
 * uses), through a group, through an owning tag it owns, or through `autogroup:member`
 * (any user), `autogroup:admin` (owner or admin role), `autogroup:owner` (the owner).
 */
export function checkTagOwnership(policy: Policy | null, tags: readonly string[], who: TagRequester): void {
  for (const tag of tags) {
    const owners = policy?.tagOwners.get(tag);
    if (!owners) {
      throw new ControlError("tag_not_defined", `tag ${JSON.stringify(tag)} is not defined in the policy's tagOwners`, 403);
    }
    if (who.admin) continue;
    if (!ownsTag(policy!, tag, who.user, new Set())) {
      throw new ControlError("tag_not_owned", `user ${JSON.stringify(loginName(who.user))} is not an owner of ${JSON.stringify(tag)} (tagOwners)`, 403);
    }
  }
}

/** Whether `user` owns `tag` under the policy's tagOwners (see {@link checkTagOwnership}). */
export function ownsTag(policy: Policy, tag: string, user: TagUser, seen = new Set<string>()): boolean {
  if (seen.has(tag)) return false;
  seen.add(tag);
  for (const owner of policy.tagOwners.get(tag) ?? []) {
    if (owner.startsWith("group:")) {
      if ((policy.groups.get(owner) ?? []).some((m) => userMatchesToken(m, user))) return true;
    } else if (owner.startsWith("tag:")) {
      if (ownsTag(policy, owner, user, seen)) return true;
    } else if (owner === "autogroup:member") {
      return true;
    } else if (owner === "autogroup:admin") {
      if (isAdminRole(user.role)) return true;
    } else if (owner === "autogroup:owner") {
      if (user.role === "owner") return true;
    } else if (owner.startsWith("autogroup:")) {
      continue;
    } else if (userMatchesToken(owner, user)) {
      return true;
    }
  }
  return false;
}
