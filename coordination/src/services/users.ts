/**
 * Local user accounts: create, list, delete, roles, password check, OIDC linking.
 *
 * Identity rules (issue 6): a user's login name is their e-mail, else `name@`
 * (`loginName` of @lattice/policy, the one rule shared with the compiler). Names and
 * e-mail addresses are unique, compared case-insensitively (checked here with typed
 * errors, and enforced by unique indexes on lower(name) / lower(email)). Roles follow
 * Tailscale: exactly one owner (the first user), admins, members (the default).
 */
import type { Selectable, Transaction } from "kysely";
import { identityKey, isUserRole, loginName as policyLoginName, USER_ROLES, type UserRole } from "@lattice/policy";
import type { Database, UserRow, UsersTable } from "../db/schema.js";
import { isUniqueViolation } from "../db/open.js";
import { ConflictError, NotFoundError, ValidationError } from "../errors.js";
import type { ServiceContext } from "./context.js";
import { hashPassword, verifyPassword } from "./password.js";

/** A user as the API shows it. */
export interface UserView {
  id: number;
  name: string;
  email: string | null;
  displayName: string | null;
  hasPassword: boolean;
  createdAt: string;
  /** owner, admin or member. */
  role: UserRole;
}

/** Input for {@link UserService.create}. */
export interface CreateUserInput {
  name: string;
  password?: string | undefined;
  email?: string | undefined;
  displayName?: string | undefined;
  /** Default: owner for the tailnet's first user, else member. */
  role?: string | undefined;
}

/** A user's role as stored (unknown values read as member, the least privilege). */
export function roleOf(u: { role: string }): UserRole {
  return isUserRole(u.role) ? u.role : "member";
}

/** The identity is already taken by another user (409, code `email_taken` / `user_exists` / `owner_exists`). */
export class IdentityConflictError extends ConflictError {
  constructor(code: "email_taken" | "user_exists" | "owner_exists", message: string) {
    super(code, message);
    this.name = "IdentityConflictError";
  }
}

function parseRole(role: string, field = "role"): UserRole {
  if (!isUserRole(role)) throw new ValidationError(`${field}: ${JSON.stringify(role)} is not one of ${USER_ROLES.join(", ")}`);
  return role;
}

const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** Converts a row to its API view. */
export function userView(u: Selectable<UsersTable>): UserView {
  return {
    id: u.id,
    name: u.name,
    email: u.email,
    displayName: u.display_name,
    hasPassword: u.password_hash != null,
    createdAt: new Date(u.created_at).toISOString(),
    role: roleOf(u),
  };
}

/** The login name policies use for a user: the e-mail when set, else `name@` (see @lattice/policy identity.ts). */
export function loginName(u: { name: string; email: string | null }): string {
  return policyLoginName(u);
}

/** A verified identity from an OIDC provider. */
export interface OidcIdentity {
  issuer: string;
  subject: string;
  /** Verified e-mail (lowercase), or null when the provider gave none. */
  email: string | null;
  /** `preferred_username`, when given. */
  username: string | null;
  displayName: string | null;
}

/** Turns an e-mail local part or user name into a valid user name base (may need a suffix). */
export function userNameBase(s: string): string {
  const base = s.toLowerCase().replace(/[^a-z0-9._-]+/g, "-").replace(/^[._-]+/, "").slice(0, 56).replace(/[._-]+$/, "");
  return base || "user";
}

/** User accounts. */
export class UserService {
  constructor(private readonly ctx: ServiceContext) {}

  /**
   * Creates a user; the name must be a lowercase DNS-ish label. Throws ValidationError for
   * bad fields, IdentityConflictError when the name or (case-insensitively) the e-mail is
   * taken, or when `role` is owner and the tailnet has one. The first user is the owner.
   */
  async create(input: CreateUserInput): Promise<UserView> {
    if (!NAME_RE.test(input.name)) {
      throw new ValidationError(`name: ${JSON.stringify(input.name)} must be 1-63 characters of a-z, 0-9, '.', '_', '-' starting with a letter or digit`);
    }
    if (input.password !== undefined && input.password.length < 8) {
      throw new ValidationError("password: must be at least 8 characters");
    }
    if (input.email !== undefined && !/^[^@\s]+@[^@\s]+$/.test(input.email)) {
      throw new ValidationError(`email: ${JSON.stringify(input.email)} is not an e-mail address`);
    }
    const wanted = input.role !== undefined ? parseRole(input.role) : undefined;
    const hash = input.password !== undefined ? await hashPassword(input.password, this.ctx.random(16)) : null;
    try {
      const row = await this.ctx.db.kysely.transaction().execute(async (tx) => {
        await this.checkIdentityFree(tx, input.name, input.email ?? null);
        const hasOwner = await tx.selectFrom("users").select("id").where("role", "=", "owner").executeTakeFirst();
        if (!hasOwner && wanted !== undefined && wanted !== "owner") {
          throw new ValidationError(`role: the tailnet's first user is its owner; ${JSON.stringify(wanted)} is not possible for ${JSON.stringify(input.name)}`);
        }
        if (hasOwner && wanted === "owner") {
          throw new IdentityConflictError("owner_exists", "role: the tailnet already has an owner; transfer ownership with `users set-role <name> owner`");
        }
        return tx
          .insertInto("users")
          .values({
            name: input.name,
            email: input.email ?? null,
            display_name: input.displayName ?? null,
            password_hash: hash,
            created_at: this.ctx.now(),
            role: hasOwner ? (wanted ?? "member") : "owner",
          })
          .returningAll()
          .executeTakeFirstOrThrow();
      });
      this.ctx.bus.publish({ userProfilesChanged: true });
      return userView(row);
    } catch (e) {
      if (isUniqueViolation(e)) {
        throw new IdentityConflictError("user_exists", `user ${JSON.stringify(input.name)}${input.email ? ` or e-mail ${JSON.stringify(input.email)}` : ""} already exists`);
      }
      throw e;
    }
  }

  /**
   * Throws IdentityConflictError when another user has this name or e-mail (both compared
   * case-insensitively, like the database's unique indexes).
   */
  private async checkIdentityFree(tx: Transaction<Database>, name: string, email: string | null): Promise<void> {
    const byName = await tx.selectFrom("users").select("name").where((eb) => eb(eb.fn("lower", ["name"]), "=", identityKey(name))).executeTakeFirst();
    if (byName) throw new IdentityConflictError("user_exists", `user ${JSON.stringify(name)} already exists`);
    if (email === null) return;
    const byEmail = await tx.selectFrom("users").select("name").where((eb) => eb(eb.fn("lower", ["email"]), "=", identityKey(email))).executeTakeFirst();
    if (byEmail) {
      throw new IdentityConflictError("email_taken", `email: ${JSON.stringify(email)} already belongs to user ${JSON.stringify(byEmail.name)} (e-mail addresses are unique, compared case-insensitively)`);
    }
  }

  /**
   * Sets a user's role. Making someone the owner transfers ownership (the previous owner
   * becomes an admin); the owner's own role cannot be lowered (transfer it instead).
   */
  async setRole(nameOrId: string, role: string): Promise<UserView> {
    const want = parseRole(role);
    const row = await this.ctx.db.kysely.transaction().execute(async (tx) => {
      const user = await this.find(tx, nameOrId);
      const current = roleOf(user);
      if (current === want) return user;
      if (current === "owner") {
        throw new ConflictError("owner_required", `user ${JSON.stringify(user.name)} is the tailnet's owner; give the owner role to someone else first (users set-role <name> owner)`);
      }
      if (want === "owner") await tx.updateTable("users").set({ role: "admin" }).where("role", "=", "owner").execute();
      return tx.updateTable("users").set({ role: want }).where("id", "=", user.id).returningAll().executeTakeFirstOrThrow();
    });
    this.ctx.bus.publish({ userProfilesChanged: true });
    return userView(row);
  }

  /**
   * Changes a user's name, e-mail (null removes it) or password, validated as in
   * {@link create}. A new password ends the user's web sessions. Renaming or changing the
   * e-mail changes the login name policies use (`name@` without e-mail) — policies naming
   * the old login no longer match this user.
   * @throws {ValidationError} for a bad field, {@link IdentityConflictError} when taken, NotFoundError.
   */
  async update(nameOrId: string, change: { name?: string; email?: string | null; password?: string }): Promise<UserView> {
    if (change.name !== undefined && !NAME_RE.test(change.name)) {
      throw new ValidationError(`name: ${JSON.stringify(change.name)} must be 1-63 characters of a-z, 0-9, '.', '_', '-' starting with a letter or digit`);
    }
    if (change.password !== undefined && change.password.length < 8) throw new ValidationError("password: must be at least 8 characters");
    if (change.email != null && !/^[^@\s]+@[^@\s]+$/.test(change.email)) throw new ValidationError(`email: ${JSON.stringify(change.email)} is not an e-mail address`);
    const hash = change.password !== undefined ? await hashPassword(change.password, this.ctx.random(16)) : undefined;
    try {
      const row = await this.ctx.db.kysely.transaction().execute(async (tx) => {
        const user = await this.find(tx, nameOrId);
        const others = tx.selectFrom("users").select("name").where("id", "!=", user.id);
        if (change.name !== undefined && (await others.where((eb) => eb(eb.fn("lower", ["name"]), "=", identityKey(change.name!))).executeTakeFirst())) {
          throw new IdentityConflictError("user_exists", `user ${JSON.stringify(change.name)} already exists`);
        }
        if (change.email != null) {
          const taken = await others.where((eb) => eb(eb.fn("lower", ["email"]), "=", identityKey(change.email!))).executeTakeFirst();
          if (taken) throw new IdentityConflictError("email_taken", `email: ${JSON.stringify(change.email)} already belongs to user ${JSON.stringify(taken.name)} (e-mail addresses are unique, compared case-insensitively)`);
        }
        if (hash !== undefined) await tx.deleteFrom("web_sessions").where("user_id", "=", user.id).execute();
        return tx
          .updateTable("users")
          .set({ ...(change.name !== undefined ? { name: change.name } : {}), ...(change.email !== undefined ? { email: change.email } : {}), ...(hash !== undefined ? { password_hash: hash } : {}) })
          .where("id", "=", user.id)
          .returningAll()
          .executeTakeFirstOrThrow();
      });
      this.ctx.bus.publish({ userProfilesChanged: true });
      return userView(row);
    } catch (e) {
      if (isUniqueViolation(e)) throw new IdentityConflictError("user_exists", `user ${JSON.stringify(change.name ?? nameOrId)} or e-mail ${JSON.stringify(change.email ?? "")} already exists`);
      throw e;
    }
  }

  private async find(tx: Transaction<Database>, nameOrId: string): Promise<Selectable<UsersTable>> {
    const user =
      (await tx.selectFrom("users").selectAll().where("name", "=", nameOrId).executeTakeFirst()) ??
      (/^\d+$/.test(nameOrId) ? await tx.selectFrom("users").selectAll().where("id", "=", Number(nameOrId)).executeTakeFirst() : undefined);
    if (!user) throw new NotFoundError("user", nameOrId);
    return user;
  }

  /** All users, by id. */
  async list(): Promise<UserView[]> {
    const rows = await this.ctx.db.kysely.selectFrom("users").selectAll().orderBy("id").execute();
    return rows.map(userView);
  }

  /** Every user row, by id (for the node backend's snapshot and the policy compiler). */
  async rows(): Promise<UserRow[]> {
    return this.ctx.db.kysely.selectFrom("users").selectAll().orderBy("id").execute();
  }

  /** Finds a user by name (or numeric id); throws NotFoundError. */
  async get(nameOrId: string): Promise<Selectable<UsersTable>> {
    const row = await this.ctx.db.kysely
      .selectFrom("users")
      .selectAll()
      .where((eb) => (/^\d+$/.test(nameOrId) ? eb.or([eb("name", "=", nameOrId), eb("id", "=", Number(nameOrId))]) : eb("name", "=", nameOrId)))
      .executeTakeFirst();
    if (!row) throw new NotFoundError("user", nameOrId);
    return row;
  }

  /** Deletes a user that owns no nodes (their auth keys and sessions go with them). */
  async delete(nameOrId: string): Promise<void> {
    await this.ctx.db.kysely.transaction().execute(async (tx) => {
      const user = await this.find(tx, nameOrId);
      if (roleOf(user) === "owner" && (await tx.selectFrom("users").select("id").where("id", "!=", user.id).executeTakeFirst())) {
        throw new ConflictError("owner_required", `user ${JSON.stringify(user.name)} is the tailnet's owner; give the owner role to someone else first (users set-role <name> owner)`);
      }
      const owned = await tx.selectFrom("nodes").select("id").where("user_id", "=", user.id).execute();
      if (owned.length > 0) {
        throw new ConflictError("user_has_nodes", `user ${JSON.stringify(user.name)} still owns ${owned.length} node(s); delete or re-tag them first`);
      }
      await tx.deleteFrom("auth_keys").where("user_id", "=", user.id).execute();
      await tx.deleteFrom("api_keys").where("user_id", "=", user.id).execute();
      await tx.deleteFrom("web_sessions").where("user_id", "=", user.id).execute();
      await tx.deleteFrom("pending_registrations").where("user_id", "=", user.id).execute();
      await tx.deleteFrom("users").where("id", "=", user.id).execute();
    });
    this.ctx.bus.publish({ userProfilesChanged: true });
  }

  /**
   * Maps a verified OIDC identity to a user: the one already linked to (issuer, subject),
   * else the one with the same e-mail, compared case-insensitively (which gets linked), else
   * a new user named after the e-mail's local part (or the user name, or `sub`), made unique
   * among all names (case-insensitively) with a numeric suffix. A provider that sends no
   * e-mail gets a user whose login is `name@` for a fresh name: it can never take over an
   * existing identity (name, e-mail, or another issuer/subject).
   * Throws ConflictError when the e-mail's user is linked to a different identity.
   */
  async loginOidc(id: OidcIdentity): Promise<Selectable<UsersTable>> {
    const db = this.ctx.db.kysely;
    for (let attempt = 0; attempt < 3; attempt++) {
      const linked = await db.selectFrom("users").selectAll().where("oidc_issuer", "=", id.issuer).where("oidc_subject", "=", id.subject).executeTakeFirst();
      if (linked) return linked;
      if (id.email) {
        const byEmail = await db
          .selectFrom("users")
          .selectAll()
          .where((eb) => eb(eb.fn("lower", ["email"]), "=", identityKey(id.email!)))
          .orderBy("id")
          .executeTakeFirst();
        if (byEmail) {
          if (byEmail.oidc_subject != null) {
            throw new ConflictError("oidc_identity_conflict", `the user with e-mail ${id.email} is linked to a different sign-in identity`);
          }
          const updated = await db
            .updateTable("users")
            .set({ oidc_issuer: id.issuer, oidc_subject: id.subject })
            .where("id", "=", byEmail.id)
            .where("oidc_subject", "is", null)
            .returningAll()
            .executeTakeFirst();
          if (updated) return updated;
          continue; // linked concurrently: look again
        }
      }
      const base = userNameBase(id.email ? id.email.slice(0, id.email.lastIndexOf("@")) : (id.username ?? id.subject));
      const taken = new Set(
        (await db.selectFrom("users").select("name").where((eb) => eb.or([eb("name", "=", base), eb("name", "like", `${base}-%`)])).execute()).map((r) => r.name.toLowerCase()),
      );
      let name = base;
      for (let i = 2; taken.has(name); i++) name = `${base}-${i}`;
      try {
        // The first user of a tailnet is its owner (a concurrent first login hits the
        // one-owner index and retries as a member).
        const hasOwner = await db.selectFrom("users").select("id").where("role", "=", "owner").executeTakeFirst();
        const row = await db
          .insertInto("users")
          .values({
            role: hasOwner ? "member" : "owner",
            name,
            email: id.email,
            display_name: id.displayName,
            password_hash: null,
            created_at: this.ctx.now(),
            oidc_issuer: id.issuer,
            oidc_subject: id.subject,
          })
          .returningAll()
          .executeTakeFirstOrThrow();
        this.ctx.bus.publish({ userProfilesChanged: true });
        return row;
      } catch (e) {
        if (!isUniqueViolation(e)) throw e; // a concurrent login took the name or the identity: retry
      }
    }
    throw new ConflictError("oidc_user_busy", "could not create the user for this sign-in; please try again");
  }

  /** Returns the user when name and password match, else null (same time either way, roughly). */
  async authenticate(name: string, password: string): Promise<Selectable<UsersTable> | null> {
    const user = await this.ctx.db.kysely.selectFrom("users").selectAll().where("name", "=", name).executeTakeFirst();
    if (!user || !user.password_hash) {
      // Spend the same work so timing does not reveal which names exist.
      await verifyPassword(password, "scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
      return null;
    }
    return (await verifyPassword(password, user.password_hash)) ? user : null;
  }
}
