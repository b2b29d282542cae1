/**
 * The one identity rule of Lattice, shared by the policy compiler and the coordination
 * server (tag ownership, the web confirm page, OIDC linking, user uniqueness).
 *
 * - A user's **login name** is their e-mail address when they have one, else `name@`
 *   (headscale's convention for users without e-mail; Tailscale login names are e-mails).
 * - A policy token (`"alice@corp.example"`, `"alice@"`) names a user exactly when it equals
 *   the user's login name, compared case-insensitively for ASCII letters ({@link identityKey};
 *   e-mail addresses are matched case-insensitively by Tailscale and by the mail providers
 *   users meet in practice).
 *   Nothing else matches: `"alice@corp.example"` is not the e-mail-less local user `alice`,
 *   and `"alice@"` is not a user named alice whose login is `alice@example.com`.
 * - Roles: `owner` (exactly one per tailnet, normally the first user), `admin`, `member`,
 *   as in Tailscale. `autogroup:admin` is the owner and the admins; `autogroup:owner` the owner.
 */

/** A user's role in the tailnet (Tailscale's Owner / Admin / Member). */
export type UserRole = "owner" | "admin" | "member";

/** Every role, most powerful first. */
export const USER_ROLES: readonly UserRole[] = ["owner", "admin", "member"];

/** Whether `s` is a role name. */
export function isUserRole(s: unknown): s is UserRole {
  return typeof s === "string" && (USER_ROLES as readonly string[]).includes(s);
}

/** Whether a role may administer the tailnet (owner or admin). */
export function isAdminRole(role: UserRole): boolean {
  return role === "owner" || role === "admin";
}

/**
 * A user's login name: the e-mail when set (non-empty), else `name@`.
 * @param u name and optional e-mail (null, undefined or "" mean none)
 */
export function loginName(u: { name: string; email?: string | null | undefined }): string {
  return u.email ? u.email : `${u.name}@`;
}

/**
 * The comparison key of a login name or policy user token: ASCII letters lowercased,
 * everything else kept. ASCII-only on purpose: it is exactly what SQLite's `lower()` does,
 * so the database's unique index on `lower(email)` and this function never disagree about
 * whether two addresses are one identity (PostgreSQL's `lower()` also folds non-ASCII
 * letters, which can only make its index stricter).
 */
export function identityKey(login: string): string {
  return login.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

/** Whether two login names / user tokens denote the same identity (case-insensitive). */
export function sameIdentity(a: string, b: string): boolean {
  return identityKey(a) === identityKey(b);
}

/** Whether the policy user token `token` (e.g. an ACL source or tagOwners entry) names `u`. */
export function userMatchesToken(token: string, u: { name: string; email?: string | null | undefined }): boolean {
  return sameIdentity(token, loginName(u));
}

/**
 * Entries of `groups` and `tagOwners` that cannot name anyone under the identity rule:
 * strings without `@` that are not `group:`, `tag:` or `autogroup:` references (a bare
 * `alice` once matched the user named alice; it no longer does). Each problem names the
 * field and value, e.g. `groups["group:eng"]: "alice" is not a login name …`. The server
 * refuses to store a policy with any (`policy set`/`check`); an already stored one keeps
 * loading, the entries just match nobody.
 */
export function userTokenProblems(policy: { groups: ReadonlyMap<string, readonly string[]>; tagOwners: ReadonlyMap<string, readonly string[]> }): string[] {
  const out: string[] = [];
  const check = (field: string, token: string) => {
    if (token.includes("@") || /^(group|tag|autogroup):/.test(token)) return;
    out.push(`${field}: ${JSON.stringify(token)} is not a login name; write the user's e-mail, or ${JSON.stringify(`${token}@`)} for a user without one`);
  };
  for (const [g, members] of policy.groups) for (const m of members) check(`groups[${JSON.stringify(g)}]`, m);
  for (const [t, owners] of policy.tagOwners) for (const o of owners) check(`tagOwners[${JSON.stringify(t)}]`, o);
  return out;
}
