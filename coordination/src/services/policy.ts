/**
 * The tailnet policy: versions in the database, validated by @lattice/policy when saved
 * (parse, compile against the current tailnet, `tests`/`sshTests`), and the health of the
 * running compile the node backend reports.
 */
import { applyAutoApprovers, IncrementalCompiler, parsePolicy, PolicyError, userTokenProblems, type Policy } from "@lattice/policy";
import { approvePendingRoutes } from "./route-approval.js";
import { loadTopology } from "./topology.js";
import { PolicyRejectedError } from "../errors.js";
import { tooDeepAt } from "../json-depth.js";
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

/** Deepest nesting of arrays/objects a policy may have (a policy needs ~6; app capabilities carry user JSON). */
export const MAX_POLICY_DEPTH = 64;

/**
 * Parses a policy text, converting parser errors into a 400 naming line:column. Text nested
 * deeper than {@link MAX_POLICY_DEPTH} is refused before parsing (json-depth.ts).
 */
export function parseOrReject(text: string): Policy {
  const deep = tooDeepAt(text, MAX_POLICY_DEPTH);
  if (deep) throw new PolicyRejectedError(`invalid policy: nested deeper than ${MAX_POLICY_DEPTH} levels at ${deep.line}:${deep.column}`, deep.line, deep.column);
  try {
    return parsePolicy(text);
  } catch (e) {
    if (e instanceof PolicyError) throw new PolicyRejectedError(`invalid policy: ${e.message}`, e.line, e.column);
    throw e;
  }
}

/** The current policy, parsed, with the compiler the running tailnet is compiled with. */
export interface CurrentPolicy {
  version: number;
  text: string;
  policy: Policy;
  /**
   * The policy's compiler. After `set` it holds the save-time compile, so the node
   * backend's next compile continues from it instead of compiling the tailnet again.
   */
  compiler: IncrementalCompiler;
}

/**
 * Whether the current policy compiles for the current tailnet. It always should: data
 * changes never run the policy's checks. When it does not anyway, every node is cut off
 * (empty packet filter, no peers) until it does again, and this says why.
 */
export type PolicyHealth =
  | { ok: true }
  | {
      ok: false;
      /** Always "policy_compile_failed". */
      code: "policy_compile_failed";
      /** The policy version that failed to compile. */
      version: number;
      /** The compiler's message. */
      message: string;
      /** When the failure was first seen (ISO 8601). */
      since: string;
    };

/** Policy storage and validation. Keeps the parsed current policy cached. */
export class PolicyService {
  #cache: { version: number; policy: Policy; compiler: IncrementalCompiler } | null = null;
  #health: PolicyHealth = { ok: true };

  /** @param onCompile told the duration (ms) and outcome of every running compile (metrics). */
  constructor(
    private readonly ctx: ServiceContext,
    private readonly onCompile: (ms: number, ok: boolean) => void = () => {},
  ) {}

  /** The current policy text and version. */
  async get(): Promise<PolicyVersion> {
    const row = await this.ctx.db.kysely.selectFrom("policies").selectAll().orderBy("id", "desc").limit(1).executeTakeFirst();
    if (!row) return { version: 0, policy: DEFAULT_POLICY, updatedAt: null };
    return { version: row.id, policy: row.text, updatedAt: new Date(row.created_at).toISOString() };
  }

  /** The current policy, parsed, and its compiler (cached by version). */
  async current(): Promise<CurrentPolicy> {
    const cur = await this.get();
    if (this.#cache?.version !== cur.version) {
      const policy = parseOrReject(cur.policy);
      this.#cache = { version: cur.version, policy, compiler: this.#compiler(policy) };
    }
    return { version: cur.version, text: cur.policy, policy: this.#cache.policy, compiler: this.#cache.compiler };
  }

  #compiler(policy: Policy): IncrementalCompiler {
    return new IncrementalCompiler(policy, { serverUrl: this.ctx.options.serverUrl });
  }

  /**
   * Validates a policy without storing it: parses it, refuses group members / tag owners
   * that are not login names ({@link userTokenProblems}), then compiles it against the
   * current tailnet with its data checks (`tests`, `sshTests`, SSH domains); throws
   * PolicyRejectedError. This is the only place those checks run (as in Tailscale: on
   * save, never on node or user changes).
   */
  async check(text: string): Promise<Policy> {
    return (await this.#checked(text)).policy;
  }

  async #checked(text: string): Promise<{ policy: Policy; compiler: IncrementalCompiler }> {
    const policy = parseOrReject(text);
    const problems = userTokenProblems(policy);
    if (problems.length > 0) throw new PolicyRejectedError(`invalid policy: ${problems.join("; ")}`);
    const topology = await loadTopology(this.ctx);
    const compiler = this.#compiler(policy);
    try {
      // As the tailnet will be once saving approved the pending routes this policy auto-approves.
      compiler.check(applyAutoApprovers(policy, topology));
    } catch (e) {
      if (e instanceof PolicyError) throw new PolicyRejectedError(`invalid policy: ${e.message}`, e.line, e.column);
      throw e;
    }
    return { policy, compiler };
  }

  /** The health of the running compile (see {@link PolicyHealth}). */
  health(): PolicyHealth {
    return this.#health;
  }

  /**
   * Records the outcome of the running compile of policy `version` (the node backend
   * calls this after every compile); `error` undefined means it compiled.
   */
  reportCompile(version: number, error?: string, durationMs?: number): void {
    if (durationMs !== undefined) this.onCompile(durationMs, error === undefined);
    if (error === undefined) this.#health = { ok: true };
    else if (this.#health.ok || this.#health.version !== version || this.#health.message !== error) {
      this.#health = { ok: false, code: "policy_compile_failed", version, message: error, since: new Date(this.ctx.now()).toISOString() };
    }
  }

  /** Validates and stores a new version, then announces `policyChanged`. */
  async set(text: string): Promise<PolicyVersion> {
    const { policy, compiler } = await this.#checked(text);
    const now = this.ctx.now();
    const row = await this.ctx.db.kysely
      .insertInto("policies")
      .values({ text, created_at: now })
      .returning(["id", "created_at"])
      .executeTakeFirstOrThrow();
    // The checked compile is handed on: the backend's next compile continues from it.
    this.#cache = { version: row.id, policy, compiler };
    // Pending routes the new policy auto-approves are approved before the change is announced.
    const approved = await approvePendingRoutes(this.ctx, policy);
    this.ctx.bus.publish(approved.length > 0 ? { policyChanged: true, nodesChanged: approved } : { policyChanged: true });
    return { version: row.id, policy: text, updatedAt: new Date(row.created_at).toISOString() };
  }
}
