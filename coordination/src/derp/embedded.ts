/**
 * The DERP relay and STUN server lattice-control embeds (on by default; `--no-derp` turns
 * it off), and `POST /derp/admit` for external `lattice-derp --verify-clients` relays.
 *
 * - DERP (Tailscale's protocol v2, @lattice/derp's Node edge) is served on the control
 *   server's own HTTP(S) listener: `GET /derp` with `Upgrade: DERP`, `/derp/probe`,
 *   `/derp/latency-check`, `/generate_204`. The listener's timeouts and total/per-source
 *   connection caps apply to DERP connections like to any other (http/limits.ts).
 * - Admission: only current nodes of this tailnet (approved, key not expired, not
 *   deleted), looked up in-process per login; at most {@link MAX_ADMISSIONS_IN_FLIGHT}
 *   lookups at once, more logins are refused at once; a failed lookup refuses (fail closed).
 * - STUN (RFC 8489 Binding) on UDP `--stun-port` of the listen host.
 * - `/derp/admit` (the contract of derp/README.md, Tailscale's
 *   tailcfg.DERPAdmitClientRequest/Response): POST {"NodePublic": "nodekey:<hex>",
 *   "Source": "<ip>"} → 200 {"Allow": bool}; body ≤ {@link MAX_ADMIT_BODY_BYTES}, 400
 *   naming the field for a bad body, 405 for other methods, 503 when too many are in flight.
 */
import { randomBytes } from "node:crypto";
import type http from "node:http";
import { performance } from "node:perf_hooks";
import type { Duplex } from "node:stream";
import { z } from "zod";
import { createNodeDerp, type NodeDerp, type ServerConn } from "@lattice/derp";
import { startStunServer, type StunServer } from "@lattice/stun";
import type { Control } from "../app.js";
import { ControlError } from "../errors.js";
import { readBody, sendError, sendJson, validate } from "../http/json.js";
import { requestUrl } from "../http/decode.js";

/** Concurrent node-key lookups for admission (embedded relay and /derp/admit each). */
export const MAX_ADMISSIONS_IN_FLIGHT = 256;
/** Largest `/derp/admit` request body, bytes. */
export const MAX_ADMIT_BODY_BYTES = 4096;

/** Logger subset. */
export interface DerpLog {
  error(o: unknown, m?: string): void;
  warn(o: unknown, m?: string): void;
  debug(o: unknown, m?: string): void;
}

/** Counters (exposed at the admin socket's `/metrics` as `derp`). */
export interface EmbeddedDerpCounters {
  admitted: number;
  refused: number;
  admissionErrors: number;
  admissionOverloaded: number;
  admitRequests: number;
  admitRequestsAllowed: number;
  admitRequestsRejected: number;
}

const AdmitRequest = z.looseObject({
  NodePublic: z.string().regex(/^nodekey:[0-9a-fA-F]{64}$/, 'want "nodekey:" and 64 hex digits'),
  Source: z.string().max(64).optional(),
});

/** `POST /derp/admit`: answers whether a node key is a current node (see the file comment). */
export function createAdmitHandler(control: Control, counters: EmbeddedDerpCounters, log: DerpLog): (req: http.IncomingMessage, res: http.ServerResponse) => boolean {
  let inFlight = 0;
  return (req, res) => {
    if (requestUrl(req).pathname !== "/derp/admit") return false;
    counters.admitRequests++;
    if (req.method !== "POST") {
      res.setHeader("allow", "POST");
      sendError(res, new ControlError("method_not_allowed", "/derp/admit takes POST", 405));
      return true;
    }
    if (inFlight >= MAX_ADMISSIONS_IN_FLIGHT) {
      counters.admitRequestsRejected++;
      sendError(res, new ControlError("server_busy", "too many admission checks in flight; retry", 503));
      req.resume();
      return true;
    }
    inFlight++;
    void (async () => {
      try {
        const body = await readBody(req, MAX_ADMIT_BODY_BYTES);
        let value: unknown;
        try {
          value = JSON.parse(body.toString("utf8"));
        } catch (e) {
          throw new ControlError("bad_json", `body is not valid JSON: ${(e as Error).message}`, 400);
        }
        const r = validate(AdmitRequest, value);
        const allow = await control.nodes.isCurrentNodeKey(r.NodePublic.toLowerCase());
        if (allow) counters.admitRequestsAllowed++;
        sendJson(res, 200, { Allow: allow });
      } catch (e) {
        counters.admitRequestsRejected++;
        sendError(res, e, (err, requestId) => log.error({ err, requestId }, "/derp/admit failed"));
      } finally {
        inFlight--;
      }
    })();
    return true;
  };
}

/** A running embedded relay. */
export interface EmbeddedDerp {
  readonly derp: NodeDerp;
  /** Bound STUN port, or null when STUN is off. */
  readonly stunPort: number | null;
  readonly stun: StunServer | null;
  /** DERP's HTTP paths (`/derp`, `/derp/probe`, `/derp/latency-check`, `/generate_204`); false for others. */
  handleRequest(req: http.IncomingMessage, res: http.ServerResponse): boolean;
  /** The `/derp` upgrade; false for other upgrades. */
  handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): boolean;
  stats(): object;
  close(): Promise<void>;
}

/**
 * Creates the embedded relay and binds STUN on `host:stunPort` (null = no STUN).
 * @throws the STUN socket's bind error (the caller names `--stun-port`).
 */
export async function startEmbeddedDerp(control: Control, host: string, stunPort: number | null, counters: EmbeddedDerpCounters, log: DerpLog): Promise<EmbeddedDerp> {
  let inFlight = 0;
  const admit = (conn: ServerConn, clientKey: Uint8Array): void => {
    if (inFlight >= MAX_ADMISSIONS_IN_FLIGHT) {
      counters.admissionOverloaded++;
      conn.admit(false, "admission backlog full");
      return;
    }
    inFlight++;
    control.nodes
      .isCurrentNodeKey(`nodekey:${Buffer.from(clientKey).toString("hex")}`)
      .then(
        (ok) => {
          if (ok) counters.admitted++;
          else counters.refused++;
          conn.admit(ok, "not a current node of this tailnet");
        },
        (err: unknown) => {
          counters.admissionErrors++;
          log.error({ err }, "DERP admission lookup failed; refusing the client");
          conn.admit(false, "admission lookup failed");
        },
      )
      .finally(() => inFlight--);
  };
  const derp = createNodeDerp({
    privateKey: Uint8Array.from(randomBytes(32)),
    random: (n) => Uint8Array.from(randomBytes(n)),
    now: () => performance.now(),
    admit: (conn, r) => admit(conn, r.clientKey),
    onConnClose: (remote, reason) => {
      if (reason) log.debug({ remote, reason }, "derp connection closed");
    },
  });
  let stun: StunServer | null = null;
  if (stunPort !== null) {
    try {
      stun = await startStunServer(host === "0.0.0.0" ? "" : host, stunPort);
    } catch (e) {
      derp.close();
      throw e;
    }
  }
  return {
    derp,
    stun,
    stunPort: stun?.port ?? null,
    handleRequest: (req, res) => derp.handleRequest(req, res),
    handleUpgrade: (req, socket, head) => derp.handleUpgrade(req, socket, head),
    stats: () => ({ derp: derp.server.stats, stun: stun?.stats ?? null, counters }),
    async close() {
      derp.close("control server shutting down");
      await stun?.close();
    },
  };
}

/** Fresh zeroed counters. */
export function newDerpCounters(): EmbeddedDerpCounters {
  return { admitted: 0, refused: 0, admissionErrors: 0, admissionOverloaded: 0, admitRequests: 0, admitRequestsAllowed: 0, admitRequestsRejected: 0 };
}
