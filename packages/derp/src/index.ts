/**
 * @lattice/derp: Tailscale's DERP protocol v2, sans-IO: constants, frame codec, login
 * (ServerKey / ClientInfo / ServerInfo with NaCl box), a server core (registry, queues,
 * mesh, admission) and a client core; plus {@link connectDerp}, the Node edge that dials
 * `GET /derp` with `Upgrade: DERP`, and {@link createNodeDerp}, the Node edge that serves it.
 */
export * from "./constants.js";
export * from "./errors.js";
export * from "./keys.js";
export * from "./frames.js";
export * from "./handshake.js";
export * from "./server.js";
export * from "./client.js";
export * from "./node-client.js";
export * from "./node-server.js";
