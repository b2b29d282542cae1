/** The production device factory: @lattice/wireguard's Device with system randomness. */
import { randomBytes } from "node:crypto";
import { Device } from "@lattice/wireguard";
import type { EdgeDevice } from "./edge.js";

/** Creates the sans-IO WireGuard device for lattice-wg. */
export function createWgDevice(opts: { now: () => number; mtu: number }): EdgeDevice {
  return new Device({ now: opts.now, random: (n) => new Uint8Array(randomBytes(n)), mtu: opts.mtu });
}
