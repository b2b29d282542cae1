/**
 * @lattice/control-client: the node side of the control protocol — a client that dials
 * the coordination server (HTTP upgrade + Noise, HTTP/2 inside), registers and streams
 * netmaps. The shared core (Noise, framing, upgrade constants) is @lattice/controlbase;
 * the names this client's API takes or throws are re-exported here so callers need one
 * import.
 */
export * from "./client.js";
export {
  type NoiseKeyPair,
  type NoiseDuplex,
  CONTROL_UPGRADE,
  MapFrameError,
  NoiseError,
  noiseKeyPair,
} from "@lattice/controlbase";
