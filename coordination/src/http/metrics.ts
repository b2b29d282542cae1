/**
 * Prometheus metrics (prom-client, text exposition format) for `GET /metrics` on the main
 * listener. Each server has its own registry (no process-global state):
 *
 * - `lattice_nodes` (gauge, label `state`: online, offline, pending) — from the database
 * - `lattice_map_streams` (gauge) — open map streams
 * - `lattice_registrations_total` (counter, label `outcome`: accepted, pending_approval,
 *   interactive, refused) and `lattice_registration_refusals_total` (label `code`)
 * - `lattice_policy_compiles_total` (label `result`: ok, failed) and
 *   `lattice_policy_compile_seconds` (histogram)
 * - `lattice_http_responses_total` (label `code`: the HTTP status of every response of the
 *   main listener)
 * - the process's default metrics (`process_*`, `nodejs_*`).
 *
 * Access: an API key (Bearer or Basic), as for the REST API — Prometheus' `authorization`
 * or `basic_auth` scrape settings. The admin socket's JSON `/metrics` (listener refusals)
 * is unchanged.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

/** What the gauges read when scraped. */
export interface MetricSources {
  /** Node counts by state. */
  nodes(): Promise<{ online: number; offline: number; pending: number }>;
  /** Open map streams. */
  mapStreams(): number;
}

/** The server's metrics. */
export class ServerMetrics {
  readonly registry = new Registry();
  readonly registrations = new Counter({ name: "lattice_registrations_total", help: "Node registrations by outcome", labelNames: ["outcome"] as const, registers: [this.registry] });
  readonly refusals = new Counter({ name: "lattice_registration_refusals_total", help: "Refused node registrations by error code", labelNames: ["code"] as const, registers: [this.registry] });
  readonly policyCompiles = new Counter({ name: "lattice_policy_compiles_total", help: "Policy compiles of the running tailnet by result", labelNames: ["result"] as const, registers: [this.registry] });
  readonly policyCompileSeconds = new Histogram({
    name: "lattice_policy_compile_seconds",
    help: "Duration of policy compiles of the running tailnet",
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10],
    registers: [this.registry],
  });
  readonly httpResponses = new Counter({ name: "lattice_http_responses_total", help: "HTTP responses of the main listener by status code", labelNames: ["code"] as const, registers: [this.registry] });

  constructor(sources: MetricSources) {
    const nodes = new Gauge({
      name: "lattice_nodes",
      help: "Registered nodes by state (pending: waiting for approval)",
      labelNames: ["state"] as const,
      registers: [this.registry],
      async collect() {
        const n = await sources.nodes();
        this.set({ state: "online" }, n.online);
        this.set({ state: "offline" }, n.offline);
        this.set({ state: "pending" }, n.pending);
      },
    });
    void nodes;
    new Gauge({
      name: "lattice_map_streams",
      help: "Open map streams",
      registers: [this.registry],
      collect() {
        this.set(sources.mapStreams());
      },
    });
    collectDefaultMetrics({ register: this.registry });
  }

  /** Records a policy compile (ms). */
  compiled(ms: number, ok: boolean): void {
    this.policyCompiles.inc({ result: ok ? "ok" : "failed" });
    this.policyCompileSeconds.observe(ms / 1000);
  }

  /** The exposition text and its content type. */
  async render(): Promise<{ type: string; body: string }> {
    return { type: this.registry.contentType, body: await this.registry.metrics() };
  }
}
