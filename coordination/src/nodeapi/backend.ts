/**
 * The seam between the node-facing protocol (Noise channel, `/machine/register`,
 * `/machine/map`, map streaming — coordination/src/nodeapi, coordination/src/mapper) and
 * the rest of the server (database, auth keys, login, policy; implemented in
 * coordination/src/services/node-backend.ts).
 *
 * The node API never touches the database: it calls these methods and turns the
 * in-memory {@link NetmapState} plus declarative {@link ChangeSet}s into MapResponses.
 *
 * Ordering contract: every mutation the backend acknowledges is visible in the next
 * `netmapState()` snapshot, and the matching ChangeSet is delivered to subscribers after
 * that snapshot exists, carrying the snapshot's `version`. A stream subscribes first, then
 * takes a snapshot, and ignores change sets whose `version` is not newer than it.
 */
import type {
  DERPMap,
  DNSConfig,
  DiscoKeyString,
  FilterRule,
  Hostinfo,
  MachineKeyString,
  Node,
  NodeCapMap,
  NodeID,
  NodeKeyString,
  RegisterRequest,
  RegisterResponse,
  SSHPolicy,
  UserID,
  UserProfile,
} from "@lattice/types";

/**
 * A refusal the backend reports to the node: becomes an HTTP response with `status` and
 * a JSON body `{ "error": message, "code": code }` on the Noise channel.
 * Use 400 for malformed requests, 401 for bad/expired/revoked credentials, 403 for
 * "not allowed" (e.g. tags not owned), 404 for unknown node/key, 409 for conflicts.
 */
export class NodeBackendError extends Error {
  /** Stable machine-readable code, e.g. "auth_key_expired", "node_not_found". */
  readonly code: string;
  /** HTTP status to answer with. */
  readonly status: number;

  /** Creates a refusal with an HTTP status, stable code and human-readable message. */
  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = "NodeBackendError";
    this.code = code;
    this.status = status;
  }
}

/**
 * What the node API learns from one `MapRequest` that the backend should persist.
 * Absent fields are unchanged. The backend publishes the matching ChangeSet
 * (usually `endpointsChanged` or `nodesChanged` for hostinfo changes).
 */
export interface NodeUpdate {
  discoKey?: DiscoKeyString;
  /** "ip:port" strings, as MapRequest.Endpoints. */
  endpoints?: string[];
  hostinfo?: Hostinfo;
  /** Home DERP region (from Hostinfo.NetInfo.PreferredDERP), 0 = none. */
  homeDERP?: number;
}

/**
 * What the compiled policy says about one node, keyed by NodeID (the backend converts
 * the policy package's name-keyed output once per compile).
 */
export interface NodePolicyView {
  /** The node's packet filter (rules whose destination is this node). */
  packetFilter: FilterRule[];
  /** The node's SSH policy, or null when it has no SSH rules. */
  sshPolicy: SSHPolicy | null;
  /**
   * Peers this node may see (it may talk to them or they to it), each with the
   * AllowedIPs this node should route to it. When the array is the same object as the
   * peer's `Node.AllowedIPs`, the mapper reuses the shared peer object (no copy).
   */
  peers: ReadonlyMap<NodeID, readonly string[]>;
  /** Extra capabilities for this node's self `Node.CapMap` (nodeAttrs), if any. */
  capMap?: NodeCapMap;
}

/** A node's visible peers, as {@link NetmapState.visiblePeersOf} gives them. */
export interface VisiblePeers {
  /** Peer Node objects as this node sees them, ascending by ID. */
  readonly nodes: readonly Node[];
  /** The user ids of `nodes` (possibly also of the node itself). */
  readonly users: ReadonlySet<UserID>;
}

/**
 * An immutable snapshot of everything the mapper needs. Producing it must be cheap
 * (the backend keeps it in memory and replaces it on every change; nodes and profiles
 * unchanged since the previous snapshot should be the same objects).
 */
export interface NetmapState {
  /** Monotonic; increases with every published change. */
  readonly version: number;
  /** The tailnet's MagicDNS domain, e.g. "tailnet.example" (no trailing dot). */
  readonly domain: string;
  readonly derpMap: DERPMap;
  readonly dnsConfig: DNSConfig;
  /**
   * Every node that may appear in a netmap, rendered as tailcfg Nodes as peers see them
   * (Addresses, AllowedIPs incl. approved primary routes, Endpoints, HomeDERP, Hostinfo,
   * Online, LastSeen, KeyExpiry, Expired, MachineAuthorized, Tags, PrimaryRoutes…).
   * Nodes awaiting approval are absent (or MachineAuthorized false: the mapper skips them as peers).
   */
  readonly nodes: ReadonlyMap<NodeID, Node>;
  /** Users by id, for MapResponse.UserProfiles. */
  readonly userProfiles: ReadonlyMap<UserID, UserProfile>;
  /** The compiled policy for one node; undefined = node unknown (treated as deny-all). */
  policyFor(nodeId: NodeID): NodePolicyView | undefined;
  /**
   * Optional fast path for full netmaps: what iterating `policyFor(nodeId).peers` gives
   * (visible peers in ascending ID order, each as the mapper's `peerFor` renders it) and
   * their user ids; both may be shared between nodes (callers must not mutate them).
   * Undefined when the backend has no faster answer; the mapper then iterates `peers`.
   */
  visiblePeersOf?(nodeId: NodeID): VisiblePeers | undefined;
  /**
   * True when a node's `packetFilter` array and `sshPolicy.rules` array are the same objects
   * as in earlier snapshots for as long as their content is unchanged, so the mapper may
   * treat a different object as changed content without serializing it (an occasional
   * new object with unchanged content only costs a resend). Absent = false.
   */
  readonly policyInterned?: boolean;
}

/**
 * A declarative description of what changed (headscale's "change set"): the mapper turns
 * it into per-node delta MapResponses using the new snapshot. Empty/absent lists = nothing
 * of that kind. Several kinds may be combined in one change set.
 */
export interface ChangeSet {
  /** `NetmapState.version` of the snapshot that includes this change. */
  version: number;
  /** Nodes that joined (or became authorized/visible). */
  nodesAdded?: NodeID[];
  /** Nodes deleted, logged out, or no longer visible to anyone. */
  nodesRemoved?: NodeID[];
  /** Nodes whose Node object changed beyond endpoints (key rotation, name, tags, hostinfo, expiry, routes). */
  nodesChanged?: NodeID[];
  /** Nodes whose endpoints, disco key or home DERP changed (sent as PeersChangedPatch). */
  endpointsChanged?: NodeID[];
  /** Online status flips (sent as OnlineChange). */
  online?: ReadonlyMap<NodeID, boolean>;
  /** The compiled policy changed: filters, SSH policies and peer sets are re-diffed for every node. */
  policyChanged?: boolean;
  /** The policy changed only for these nodes (cheaper than `policyChanged`). */
  policyChangedFor?: NodeID[];
  /** The DERP map changed. */
  derpMapChanged?: boolean;
  /** DNS config or domain changed. */
  dnsChanged?: boolean;
  /** User display names/logins changed. */
  userProfilesChanged?: boolean;
  /**
   * Nodes whose own map session must end now (deleted, key expired, logged out,
   * disabled): their streams are closed so the client re-registers.
   */
  disconnect?: NodeID[];
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
  subscribe(listener: (change: ChangeSet) => void): () => void;
}
