/** Compilation of `nodeAttrs` (plus the tailnet's standing capabilities) into each node's CapMap. */
import type { Policy } from "./model.js";
import type { Resolver } from "./resolve.js";
import { isTailnetAdmin, tailnetOwner } from "./topology.js";

/** A node CapMap: capability → values (null when the capability carries none). */
export type NodeCapMap = Record<string, unknown[] | null>;

/** Capabilities every node of a tailnet receives from the control plane. */
const STANDING_CAPS = [
  "https://tailscale.com/cap/file-sharing",
  "https://tailscale.com/cap/ssh",
  "https://tailscale.com/cap/tailnet-lock",
  "probe-udp-lifetime",
  "ssh-behavior-v1",
  "ssh-env-vars",
  "store-appc-routes",
];

/** Extra capabilities implied by an attribute. */
const COMPANION_ATTRS: Record<string, string[]> = {
  funnel: ["https://tailscale.com/cap/funnel-ports?ports=443,8443,10000", "https://tailscale.com/cap/warn-funnel-no-https"],
};

/** Tailnet settings that show up in every node's CapMap. */
export interface TailnetCapSettings {
  /** Devices auto-update by default (default false). */
  autoUpdate?: boolean;
}

/**
 * node index → CapMap. Every node gets the standing capabilities, the tailnet display name
 * (the first user's login), is-owner (tagged nodes and the owner's devices), is-admin
 * (devices of users whose role is owner or admin; members' devices do not get it), then
 * the policy's nodeAttrs and randomizeClientPort.
 */
export function compileNodeAttrs(policy: Policy, resolver: Resolver, settings: TailnetCapSettings = {}): Map<number, NodeCapMap> {
  const out = new Map<number, NodeCapMap>();
  const topo = resolver.topo;
  const first = [...topo.users].sort((a, b) => a.id - b.id)[0];
  const owner = tailnetOwner(topo);
  for (const n of topo.nodes) {
    const m: NodeCapMap = {};
    for (const c of STANDING_CAPS) m[c] = null;
    m["default-auto-update"] = [settings.autoUpdate ?? false];
    if (first) m["tailnet-display-name"] = [first.email];
    if (n.tagged || (owner && n.user?.id === owner.id)) m["https://tailscale.com/cap/is-owner"] = null;
    if (!n.tagged && n.user && isTailnetAdmin(topo, n.user)) m["https://tailscale.com/cap/is-admin"] = null;
    if (policy.randomizeClientPort) m["randomize-client-port"] = null;
    out.set(n.idx, m);
  }
  for (const na of policy.nodeAttrs) {
    const r = resolver.resolveAll(na.target);
    for (const idx of r.nodes) {
      const m = out.get(idx)!;
      for (const a of na.attr) {
        if (!(a in m)) m[a] = null;
        for (const c of COMPANION_ATTRS[a] ?? []) if (!(c in m)) m[c] = null;
      }
    }
  }
  return out;
}
