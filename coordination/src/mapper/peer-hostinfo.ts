/**
 * The part of a node's stored Hostinfo that goes into netmaps (its peers' and its own
 * `Node.Hostinfo`). A node reports a lot about itself (log ids, versions, NetInfo with
 * DERP latencies, portlist services, push tokens, TPM details …) that only the control
 * server uses; re-sending all of it to every peer lets one node multiply its uploads by
 * the size of the tailnet (issue 6 A14). Kept are the fields Tailscale clients read from a
 * peer's (or their self node's) Hostinfo — found by reading tailscale's sources, v1.9x:
 *
 * | field | read by |
 * | --- | --- |
 * | Hostname | `tailscale status` (ipnlocal PeerStatus.HostName, self HostName), magicsock peer names |
 * | OS | `tailscale status`, Taildrop (skips tvOS), network flow logs |
 * | Services: only Proto peerapi4 / peerapi6 / peerapi-dns-proxy | PeerAPI ports (Taildrop, exit-node DNS proxy: ipnlocal peerAPIPorts) |
 * | sshHostKeys | `tailscale ssh` known_hosts and TailscaleSSHEnabled |
 * | Location | exit-node suggestions and location-based exit-node choice |
 * | ShareeNode | `tailscale status`/whois: the node is shared in |
 * | AppConnector | app connectors (appc: isPeerEligibleConnector) |
 * | RoutableIPs | the self node's subnet-router check (feature/bird) |
 *
 * Everything else (NetInfo, IPNVersion, log ids, OSVersion, Distro*, Package, DeviceModel,
 * PushDeviceToken, GoArch*, Cloud, Userspace*, RequestTags, WoLMACs, Services of other
 * protocols and all Descriptions, TPM, …) stays in the database for the admin CLI and
 * the policy compiler. Headscale sends the whole Hostinfo; Tailscale's hosted control
 * is closed, so this list follows the clients' readers rather than its output.
 *
 * Pure: returns a new object, never mutates its input; unknown or mistyped fields are dropped.
 */
import type { Hostinfo } from "@lattice/types";

/** Service protocols peers use (tailcfg.PeerAPI4, PeerAPI6, PeerAPIDNS). */
const PEER_SERVICE_PROTOS: ReadonlySet<string> = new Set(["peerapi4", "peerapi6", "peerapi-dns-proxy"]);

/** The Hostinfo fields a netmap carries; see the module comment. */
export function peerHostinfo(h: Readonly<Record<string, unknown>> | null | undefined): Hostinfo {
  const out: Record<string, unknown> = {};
  if (h == null || typeof h !== "object") return out as Hostinfo;
  for (const k of ["Hostname", "OS"] as const) if (typeof h[k] === "string" && h[k] !== "") out[k] = h[k];
  for (const k of ["ShareeNode"] as const) if (h[k] === true) out[k] = true;
  // opt.Bool: JSON true/false on the wire (Go's UnmarshalJSON refuses strings); rows stored
  // before validation normalised it may hold the string "true".
  if (h.AppConnector === true || h.AppConnector === "true") out.AppConnector = true;
  if (Array.isArray(h.Services)) {
    const svcs = h.Services.filter((s): s is { Proto: string; Port: number } =>
      s != null && typeof s === "object" && PEER_SERVICE_PROTOS.has((s as { Proto?: unknown }).Proto as string) && typeof (s as { Port?: unknown }).Port === "number",
    ).map((s) => ({ Proto: s.Proto, Port: s.Port }));
    if (svcs.length > 0) out.Services = svcs;
  }
  for (const k of ["sshHostKeys", "RoutableIPs"] as const) {
    const v = h[k];
    if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === "string")) out[k] = [...v];
  }
  if (h.Location != null && typeof h.Location === "object" && !Array.isArray(h.Location)) out.Location = { ...(h.Location as object) };
  return out as Hostinfo;
}
