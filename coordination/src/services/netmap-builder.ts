/**
 * The compile-and-snapshot half of the node backend, pure and synchronous (no I/O, no
 * clock): compiles the policy for the tailnet's rows, decides which nodes' compiled view
 * changed (policy-diff.ts, narrowed by the incremental compiler's `touched`), and builds
 * the mapper's {@link NetmapState} snapshot. The benchmark (coordination/bench) runs
 * the same steps one by one (compile, idsOf + changedNodes, buildState) to time each.
 */
import { compilePolicyCompact, type CompiledPolicy, type IncrementalCompiler, type Policy, type Topology } from "@lattice/policy";
import type { DERPMap, DNSConfig, NodeID } from "@lattice/types";
import type { NodeRow, UserRow } from "../db/schema.js";
import { PolicyCompileError } from "../errors.js";
import type { NetmapState } from "../mapper/types.js";
import { DEFAULT_DNS_SETTINGS, toDNSConfig, type DnsSettings } from "./dns-settings.js";
import { buildState, FAIL_CLOSED, type NodeCache, type ViewCache } from "./netmap-state.js";
import { changedNodes, idsOf } from "./policy-diff.js";
import { topologyFrom } from "./topology.js";

/** A compile function: the policy for a topology, and which topology indexes may differ from its previous result (null = any). */
export type CompileFn = (policy: Policy, topology: Topology) => { compiled: CompiledPolicy; touched: number[] | null };

/** Options of {@link NetmapBuilder}. */
export interface NetmapBuilderOptions {
  /** Public URL of the server (SSH check-mode URLs). */
  serverUrl: string;
  derpMap?: DERPMap | undefined;
  /**
   * Compile node joins/changes incrementally (the policy's IncrementalCompiler): only
   * what depends on the changed nodes is recomputed and diffed. Default true; false
   * recompiles the whole policy and diffs every node on each change.
   */
  incrementalCompile?: boolean | undefined;
  /** Replaces the compiler (tests inject a failing one to prove the fail-closed path). */
  compile?: CompileFn | undefined;
}

/** The policy to compile: its version, parsed form, and the compiler that carries its state. */
export interface PolicySource {
  version: number;
  policy: Policy;
  compiler: IncrementalCompiler;
}

/** What {@link NetmapBuilder.compile} found. */
export interface CompileOutcome {
  /** Nodes whose compiled view changed (null: every node must re-check, the first compile). */
  changed: NodeID[] | null;
  /** Set when the compile failed: the tailnet failed closed. */
  error: PolicyCompileError | null;
}

/** Compiles the tailnet's policy and builds snapshots (one per backend). */
export class NetmapBuilder {
  #compiled: CompiledPolicy = FAIL_CLOSED;
  /** NodeID of each topology index of `#compiled`; null before the first compile. */
  #compiledIds: Int32Array | null = null;
  /** The compiler `#compiled` came from (its `touched` reports are relative to its own previous result). */
  #compiler: unknown = null;
  readonly #nodes: NodeCache = new Map();
  readonly #views: ViewCache = {};
  /** The DNSConfig of the last snapshot and what it was made from. */
  #dnsConfig: { settings: DnsSettings; domain: string; config: DNSConfig } | null = null;

  constructor(private readonly opts: NetmapBuilderOptions) {}

  /**
   * Compiles `src` for the approved `rows` and diffs the result against the previous
   * compile. Never runs the policy's `tests` (they are checked when the policy is saved),
   * so a data change cannot make it fail. Should it fail anyway, the tailnet fails
   * closed: the compilation becomes empty (every node: empty packet filter, no peers)
   * and the outcome carries the error. Output is matched to nodes by id, never by name.
   */
  compile(src: PolicySource, users: readonly UserRow[], rows: readonly NodeRow[]): CompileOutcome {
    let next: CompiledPolicy;
    let touched: number[] | null = null;
    let error: PolicyCompileError | null = null;
    try {
      const topology = topologyFrom(users, rows);
      if (this.opts.compile) {
        ({ compiled: next, touched } = this.opts.compile(src.policy, topology));
      } else if (this.opts.incrementalCompile === false) {
        next = compilePolicyCompact(src.policy, topology, { serverUrl: this.opts.serverUrl, checks: false });
      } else {
        const r = src.compiler.compile(topology);
        next = r.compiled;
        touched = this.#compiler === src.compiler ? r.touched : null;
        this.#compiler = src.compiler;
      }
    } catch (e) {
      error = new PolicyCompileError(src.version, e);
      next = FAIL_CLOSED;
      touched = null;
      this.#compiler = null;
    }
    const nextIds = idsOf(next);
    const prevIds = this.#compiledIds;
    const changed = prevIds ? changedNodes({ compiled: this.#compiled, idOf: prevIds }, { compiled: next, idOf: nextIds }, touched ?? undefined) : null;
    this.#compiled = next;
    this.#compiledIds = nextIds;
    return { changed, error };
  }

  /** The current compilation (compact, by topology index; `ids` names the nodes). */
  get compiled(): CompiledPolicy {
    return this.#compiled;
  }

  /**
   * A snapshot of `rows` with the current compilation; unchanged nodes and policy views
   * are the previous snapshot's objects. `dns` (default: {@link DEFAULT_DNS_SETTINGS}) becomes
   * the DNSConfig (dns-settings.ts `toDNSConfig`), the same object while `dns` and `domain` are.
   */
  snapshot(s: { version: number; domain: string; dns?: DnsSettings; users: readonly UserRow[]; rows: readonly NodeRow[]; now: number }): NetmapState {
    const dns = s.dns ?? DEFAULT_DNS_SETTINGS;
    if (this.#dnsConfig?.settings !== dns || this.#dnsConfig.domain !== s.domain) this.#dnsConfig = { settings: dns, domain: s.domain, config: toDNSConfig(dns, s.domain) };
    return buildState(
      {
        version: s.version,
        domain: s.domain,
        derpMap: this.opts.derpMap ?? { Regions: {} },
        dnsConfig: this.#dnsConfig.config,
        users: s.users,
        rows: s.rows,
        now: s.now,
      },
      this.#compiled,
      this.#nodes,
      this.#views,
    );
  }
}
