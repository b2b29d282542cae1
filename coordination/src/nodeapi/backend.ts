/**
 * The seam between the node-facing protocol (Noise channel, `/machine/register`,
 * `/machine/map`, map streaming — coordination/src/nodeapi, coordination/src/mapper) and
 * the rest of the server (database, auth keys, login, policy; implemented in
 * coordination/src/services/node-backend.ts).
 *
 * The node API never touches the database: it calls these methods and turns the
 * in-memory {@link NetmapState} plus {@link VersionedChange}s into MapResponses (the
 * mapper's input types, ../mapper/types.ts).
 *
 * Ordering contract: every mutation the backend acknowledges is visible in the next
 * `netmapState()` snapshot, and the matching change is delivered to subscribers after
 * that snapshot exists, carrying the snapshot's `version`. A stream subscribes first, then
 * takes a snapshot, and ignores change sets whose `version` is not newer than it.
 */
import type { DiscoKeyString, Hostinfo, MachineKeyString, NodeID, NodeKeyString, RegisterRequest, RegisterResponse, SSHAction } from "@lattice/types";
import type { NetmapState, VersionedChange } from "../mapper/types.js";
import { ControlError } from "../errors.js";

export type { Change, NetmapState, NodePolicyView, VersionedChange, VisiblePeers } from "../mapper/types.js";

/**
 * A refusal the backend reports to the node: becomes an HTTP response with `status` and
 * a JSON body `{ "error": message, "code": code }` on the Noise channel. Any
 * {@link ControlError} the backend throws is answered the same way.
 * Use 400 for malformed requests, 401 for bad/expired/revoked credentials, 403 for
 * "not allowed" (e.g. tags not owned), 404 for unknown node/key, 409 for conflicts.
 */
export class NodeBackendError extends ControlError {
  /** Creates a refusal with an HTTP status, stable code (e.g. "node_not_found") and human-readable message. */
  constructor(status: number, code: string, message: string) {
    super(code, message, status);
    this.name = "NodeBackendError";
  }
}

/**
 * What the node API learns from one `MapRequest` that the backend should persist.
 * Absent fields are unchanged. The backend publishes the matching change
 * (usually `endpointsChanged`, or `nodesChanged` for hostinfo changes).
 */
export interface NodeUpdate {
  discoKey?: DiscoKeyString;
  /** "ip:port" strings, as MapRequest.Endpoints. */
  endpoints?: string[];
  hostinfo?: Hostinfo;
  /** Home DERP region (from Hostinfo.NetInfo.PreferredDERP), 0 = none. */
  homeDERP?: number;
}

/** Result of authorizing a map request: the node it belongs to. */
export interface MapAuthorization {
  nodeId: NodeID;
}

/** Where a node API request came from (for per-source limits). */
export interface RequestOrigin {
  /** The client's source key (coordination/src/source-key.ts: IPv4, or IPv6 /64). */
  source: string;
}

/** Everything the node API needs from the rest of the server. */
export interface NodeBackend {
  /**
   * Handles `POST /machine/register` for the machine whose key the Noise handshake proved.
   *
   * - With `req.Auth.AuthKey`: validate the key (exists, not expired/revoked/used up),
   *   create or re-key the node, answer MachineAuthorized true (or false when the key is
   *   not pre-approved and the device needs admin approval).
   * - Without an auth key and without Followup: start interactive login; answer with
   *   `AuthURL` set (MachineAuthorized false).
   * - With `req.Followup` (a previous AuthURL): wait until that login completes, then
   *   answer as for an auth key; reject with 401 if the URL is unknown or expired. The
   *   wait must end (reject) when `signal` aborts (the node disconnected).
   * - `req.Expiry` in the past: logout (expire the node key).
   * - `req.OldNodeKey` set: key rotation of an existing node of this machine.
   *
   * Refusals throw {@link NodeBackendError}. The request has already been validated for
   * shape (known fields, key formats) and size by the node API. `origin` says where it
   * came from (interactive logins are capped per source: 429 registration_limit_source).
   */
  register(machineKey: MachineKeyString, req: RegisterRequest, signal: AbortSignal, origin?: RequestOrigin): Promise<RegisterResponse>;

  /**
   * Authorizes `POST /machine/map`: the node key must belong to this machine, be
   * registered, authorized (approved) and not expired. Throws {@link NodeBackendError}
   * (401 "node_key_expired", 403 "machine_not_authorized", 404 "node_not_found").
   */
  authorizeMap(machineKey: MachineKeyString, nodeKey: NodeKeyString): Promise<MapAuthorization>;

  /** Persists what a map request reported (endpoints, disco key, hostinfo, home DERP) and publishes the change. */
  updateNodeFromMapRequest(nodeId: NodeID, update: NodeUpdate): Promise<void>;

  /**
   * Marks the node online (a map stream opened) or offline (its last stream closed),
   * updating LastSeen, and publishes an `online` change. Called once per stream open/close;
   * the backend counts streams per node if it cares about several concurrent ones.
   */
  setOnline(nodeId: NodeID, online: boolean): Promise<void>;

  /** The current snapshot (synchronous, cheap: kept in memory). */
  netmapState(): NetmapState;

  /** Subscribes to change sets; returns the unsubscribe function. Listeners must not throw. */
  subscribe(listener: (change: VersionedChange) => void): () => void;

  /**
   * SSH check mode: `GET /machine/ssh/action/<srcId>/to/<dstId>?local_user=<user>` from the
   * machine `machineKey` (must be node `dstId`: else 403). Resolves the SSHAction. Absent:
   * the node API answers 404.
   */
  sshAction?(machineKey: MachineKeyString, srcId: NodeID, dstId: NodeID, localUser: string): Promise<SSHAction>;

  /**
   * SSH check mode: `GET /machine/ssh/check/<id>/wait` (long poll; ends early, rejecting,
   * when `signal` aborts). 404 for an unknown check, 403 when `machineKey` is not its
   * destination node.
   */
  sshCheckWait?(machineKey: MachineKeyString, id: string, signal: AbortSignal): Promise<SSHAction>;
}
