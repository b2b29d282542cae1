/** Local user accounts: create, list, delete, password check. */
import type { Selectable } from "kysely";
import type { UsersTable } from "../db/schema.js";
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
}

/** Input for {@link UserService.create}. */
export interface CreateUserInput {
  name: string;
  password?: string | undefined;
  email?: string | undefined;
  displayName?: string | undefined;
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
  };
}

/** The login name policies use for a user: the e-mail when set, else `name@`. */
export function loginName(u: { name: string; email: string | null }): string {
  return u.email ?? `${u.name}@`;
}

/** User accounts. */
export class UserService {
  constructor(private readonly ctx: ServiceContext) {}

  /** Creates a user; the name must be a lowercase DNS-ish label and unique. */
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
    const hash = input.password !== undefined ? await hashPassword(input.password, this.ctx.random(16)) : null;
    try {
      const row = await this.ctx.db.kysely
        .insertInto("users")
        .values({
          name: input.name,
          email: input.email ?? null,
          display_name: input.displayName ?? null,
          password_hash: hash,
          created_at: this.ctx.now(),
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      this.ctx.bus.publish({ kind: "userChanged", nodeIds: [], at: this.ctx.now() });
      return userView(row);
    } catch (e) {
      if (isUniqueViolation(e)) throw new ConflictError("user_exists", `user ${JSON.stringify(input.name)} already exists`);
      throw e;
    }
  }

  /** All users, by id. */
  async list(): Promise<UserView[]> {
    const rows = await this.ctx.db.kysely.selectFrom("users").selectAll().orderBy("id").execute();
    return rows.map(userView);
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
      const user = await tx.selectFrom("users").selectAll().where("name", "=", nameOrId).executeTakeFirst()
        ?? (/^\d+$/.test(nameOrId) ? await tx.selectFrom("users").selectAll().where("id", "=", Number(nameOrId)).executeTakeFirst() : undefined);
      if (!user) throw new NotFoundError("user", nameOrId);
      const owned = await tx.selectFrom("nodes").select("id").where("user_id", "=", user.id).execute();
      if (owned.length > 0) {
        throw new ConflictError("user_has_nodes", `user ${JSON.stringify(user.name)} still owns ${owned.length} node(s); delete or re-tag them first`);
      }
      await tx.deleteFrom("auth_keys").where("user_id", "=", user.id).execute();
      await tx.deleteFrom("web_sessions").where("user_id", "=", user.id).execute();
      await tx.deleteFrom("pending_registrations").where("user_id", "=", user.id).execute();
      await tx.deleteFrom("users").where("id", "=", user.id).execute();
    });
    this.ctx.bus.publish({ kind: "userChanged", nodeIds: [], at: this.ctx.now() });
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
