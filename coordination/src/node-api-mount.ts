/**
 * Mounts the node-facing protocol (coordination/src/nodeapi: `GET /key` and the Noise
 * upgrade) on the main HTTP server, backed by {@link ControlNodeBackend}. The server's
 * Noise static key is generated once and kept in the settings table.
 */
import type http from "node:http";
import { noiseKeyPair } from "@lattice/control-client";
import type { DERPMap } from "@lattice/types";
import type { Control } from "./app.js";
import { attachNodeApi, type NodeApi, type NodeApiOptions } from "./nodeapi/attach.js";
import { ControlNodeBackend } from "./services/node-backend.js";

/** The mounted node API and its backend. */
export interface MountedNodeApi {
  api: NodeApi;
  backend: ControlNodeBackend;
  /** Serves `GET /key`; false for other requests. */
  handleRequest(req: http.IncomingMessage, res: http.ServerResponse): boolean;
  /** Detaches from the server and closes every node stream. */
  close(): void;
}

/** Attaches the node API to `server`. */
export async function mountNodeApi(
  server: http.Server,
  control: Control,
  log: { error(o: unknown, m?: string): void },
  derpMap?: DERPMap,
  nodeLimits: Pick<NodeApiOptions, "maxRegisterBodyBytes" | "maxHostinfoBytes" | "hostinfoMinIntervalMs"> = {},
): Promise<MountedNodeApi> {
  const priv = Buffer.from(await control.settings.getOrCreate("noise_private_key", () => control.ctx.random(32).toString("base64url")), "base64url");
  const onError = (err: unknown) => log.error({ err }, "node API error");
  const backend = await ControlNodeBackend.create(control, derpMap ? { onError, derpMap } : { onError });
  const api = attachNodeApi(server, backend, { ...nodeLimits, serverKey: noiseKeyPair(new Uint8Array(priv)), log: onError, now: control.ctx.now });
  return {
    api,
    backend,
    handleRequest: (req, res) => api.handleRequest(req, res),
    close() {
      api.close();
      backend.close();
    },
  };
}
