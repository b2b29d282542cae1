/** The tailnet policy: versions in the database, validated by @lattice/policy. */
import { applyAutoApprovers, compilePolicy, parsePolicy, PolicyError, type Policy } from "@lattice/policy";
import { approvePendingRoutes } from "./route-approval.js";
import { loadTopology } from "./topology.js";
import { PolicyRejectedError } from "../errors.js";
import type { ServiceContext } from "./context.js";

/** The policy used while none was ever set: Tailscale's default, allow everything. */
export const DEFAULT_POLICY = `// Default policy: every node may reach every other node.
{
  "acls": [
    { "action": "accept", "src": ["*"], "dst": ["*:*"] },
  ],
}
`;

/** A stored policy version. */
export interface PolicyVersion {
  /** 0 for the built-in default. */
  version: number;
  policy: string;
  updatedAt: string | null;
}

/** Parses a policy text, converting parser errors into a 400 naming line:column. */
export function parseOrReject(text: string): Policy {
  try {
    return parsePolicy(text);
  } catch (e) {
    if (e instanceof PolicyError) throw new PolicyRejectedError(`invalid policy: ${e.message}`);
    throw e;
  }
}

/** Policy storage and validation. Keeps the parsed current policy cached. */
export class PolicyService {
  #cache: { version: number; policy: Policy } | null = null;

  constructor(private readonly ctx: ServiceContext) {}

  /** The current policy text and version. */
  async get(): Promise<PolicyVersion> {
    const row = await this.ctx.db.kysely.selectFrom("policies").selectAll().orderBy("id", "desc").limit(1).executeTakeFirst();
    if (!row) return { version: 0, policy: DEFAULT_POLICY, updatedAt: null };
    return { version: row.id, policy: row.text, updatedAt: new Date(row.created_at).toISOString() };
  }

  /** The current policy, parsed (cached by version). */
  async current(): Promise<{ version: number; text: string; policy: Policy }> {
    const cur = await this.get();
    if (this.#cache?.version !== cur.version) {
      this.#cache = { version: cur.version, policy: parseOrReject(cur.policy) };
    }
    return { version: cur.version, text: cur.policy, policy: this.#cache.policy };
  }

  /**
   * Validates a policy without storing it: parses it, then compiles it against the
   * current tailnet (which runs its `tests` and `sshTests`); throws PolicyRejectedError.
   */
  async check(text: string): Promise<Policy> {
    const policy = parseOrReject(text);
    const topology = await loadTopology(this.ctx);
    try {
      // As the tailnet will be once saving approved the pending routes this policy auto-approves.
      compilePolicy(policy, applyAutoApprovers(policy, topology), { serverUrl: this.ctx.options.serverUrl });
    } catch (e) {
      if (e instanceof PolicyError) throw new PolicyRejectedError(`invalid policy: ${e.message}`);
      throw e;
    }
    return policy;
  }

  /** Validates and stores a new version, then announces `policyChanged`. */
  async set(text: string): Promise<PolicyVersion> {
    const policy = await this.check(text);
    const now = this.ctx.now();
    const row = await this.ctx.db.kysely
      .insertInto("policies")
      .values({ text, created_at: now })
      .returning(["id", "created_at"])
      .executeTakeFirstOrThrow();
    this.#cache = { version: row.id, policy };
    // Pending routes the new policy auto-approves are approved before the change is announced.
    await approvePendingRoutes(this.ctx, policy);
    this.ctx.bus.publish({ kind: "policyChanged", nodeIds: [], at: now });
    return { version: row.id, policy: text, updatedAt: new Date(row.created_at).toISOString() };
  }
}
