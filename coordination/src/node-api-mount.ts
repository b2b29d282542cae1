/**
 * Mounts the node-facing protocol (coordination/src/nodeapi: `GET /key` and the Noise
 * upgrade) on the main HTTP server, backed by {@link ControlNodeBackend}. The server's
 * Noise static key is generated once and kept in the settings table.
 */
import type http from "node:http";
import { noiseKeyPair } from "@lattice/controlbase";
import type { DERPMap } from "@lattice/types";
import type { Control } from "./app.js";
import { PolicyCompileError } from "./errors.js";
import type { ListenerLimits, UpgradeHandler } from "./http/limits.js";
import { attachNodeApi, type NodeApi, type NodeApiOptions } from "./nodeapi/attach.js";
import { ControlNodeBackend } from "./services/node-backend.js";
import { loggedBackend, type RegistrationOutcome } from "./nodeapi/logged-backend.js";

/** The mounted node API and its backend. */
export interface MountedNodeApi {
  api: NodeApi;
  backend: ControlNodeBackend;
  /** Handles a control-channel upgrade; false (doing nothing) for other upgrades. */
  handleUpgrade: UpgradeHandler;
  /** Serves `GET /key`; false for other requests. */
  handleRequest(req: http.IncomingMessage, res: http.ServerResponse): boolean;
  /** Detaches from the server and closes every node stream. */
  close(): void;
}

/**
 * Builds the node API for `control`. The caller routes requests to `handleRequest` and
 * upgrades to `handleUpgrade` (the server's upgrade dispatch answers the rest).
 */
export async function mountNodeApi(
  control: Control,
  log: { error(o: unknown, m?: string): void; info?(o: unknown, m?: string): void; warn?(o: unknown, m?: string): void },
  derpMap?: DERPMap,
  limits?: ListenerLimits,
  nodeLimits: Pick<NodeApiOptions, "maxRegisterBodyBytes" | "maxHostinfoBytes" | "hostinfoMinIntervalMs"> = {},
  countRegistration?: (outcome: RegistrationOutcome, code?: string) => void,
): Promise<MountedNodeApi> {
  const priv = Buffer.from(await control.settings.getOrCreate("noise_private_key", () => control.ctx.random(32).toString("base64url")), "base64url");
  const onError = (err: unknown, requestId?: string) =>
    err instanceof PolicyCompileError
      ? log.error({ err, code: err.code, version: err.version, ...(requestId ? { requestId } : {}) }, err.message)
      : log.error({ err, ...(requestId ? { requestId } : {}) }, "node API error");
  const backend = await ControlNodeBackend.create(control, derpMap ? { onError, derpMap } : { onError });
  const events = log.info && log.warn ? loggedBackend(backend, { info: log.info.bind(log), warn: log.warn.bind(log) }, countRegistration) : backend;
  const api = attachNodeApi(null, events, {
    ...nodeLimits,
    now: control.ctx.now,
    serverKey: noiseKeyPair(new Uint8Array(priv)),
    log: onError,
    ...(limits ? { idleTimeoutMs: limits.controlIdleTimeoutMs, bodyTimeoutMs: limits.bodyTimeoutMs, maxStreamsPerConnection: limits.maxStreamsPerConnection, refuseGraceMs: limits.headerTimeoutMs } : {}),
  });
  return {
    api,
    backend,
    handleRequest: (req, res) => api.handleRequest(req, res),
    handleUpgrade: (req, socket, head) => api.handleUpgrade(req, socket, head),
    close() {
      api.close();
      backend.close();
    },
  };
}
