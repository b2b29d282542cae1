/**
 * Reading a tailcfg DERPMap: the URL to dial for a region and the STUN addresses to probe.
 * URL: `https://HostName[:DERPPort]/derp` (DERPPort 0 = 443), `http://` when the node has
 * the Lattice extension `InsecureHTTP: true`; the host dialed is the node's IPv4 field when
 * set, else HostName (TLS then verifies HostName via SNI only when dialing by name);
 * `InsecureForTests` = TLS without certificate verification (Tailscale's meaning).
 */
import type { DERPMap, DERPNode, DERPRegion } from "@lattice/types";
import { DEFAULT_STUN_PORT } from "./constants.js";

/** How to dial one DERP node. */
export interface DerpDial {
  readonly url: string;
  readonly insecureSkipVerify: boolean;
}

/** Regions sorted by id. */
export function regionsOf(m: DERPMap): DERPRegion[] {
  return Object.values(m.Regions ?? {}).filter((r) => r !== null && typeof r === "object" && Number.isInteger(r.RegionID)).sort((a, b) => a.RegionID - b.RegionID);
}

/** The region ids that may be home (not NoMeasureNoHome, with at least one DERP node). */
export function homeEligible(m: DERPMap): number[] {
  return regionsOf(m).filter((r) => !r.NoMeasureNoHome && (r.Nodes ?? []).some((n) => !n.STUNOnly)).map((r) => r.RegionID);
}

/** Dial parameters of a node. */
export function derpDial(n: DERPNode): DerpDial {
  const host = n.IPv4 !== undefined && n.IPv4 !== "" ? n.IPv4 : n.HostName;
  const scheme = n.InsecureHTTP === true ? "http" : "https";
  const defPort = scheme === "http" ? 80 : 443;
  const port = n.DERPPort !== undefined && n.DERPPort > 0 ? n.DERPPort : defPort;
  const h = host.includes(":") ? `[${host}]` : host;
  return { url: `${scheme}://${h}${port === defPort ? "" : `:${port}`}/derp`, insecureSkipVerify: n.InsecureForTests === true };
}

/** The DERP nodes of a region to dial, in order (STUN-only nodes skipped). */
export function derpNodes(m: DERPMap, region: number): DERPNode[] {
  const r = m.Regions?.[String(region)];
  return (r?.Nodes ?? []).filter((n) => !n.STUNOnly);
}

/** STUN host/port pairs per region (STUNPort −1 = disabled, 0 = 3478). Hosts may be names. */
export function stunHosts(m: DERPMap): { region: number; host: string; port: number }[] {
  const out: { region: number; host: string; port: number }[] = [];
  for (const r of regionsOf(m)) {
    for (const n of r.Nodes ?? []) {
      if (n.STUNPort === -1) continue;
      const port = n.STUNPort !== undefined && n.STUNPort > 0 ? n.STUNPort : DEFAULT_STUN_PORT;
      if (n.STUNTestIP) out.push({ region: r.RegionID, host: n.STUNTestIP, port });
      else {
        if (n.IPv4 !== undefined && n.IPv4 !== "") out.push({ region: r.RegionID, host: n.IPv4, port });
        if (n.IPv6 !== undefined && n.IPv6 !== "") out.push({ region: r.RegionID, host: n.IPv6, port });
        if (!n.IPv4 && !n.IPv6) out.push({ region: r.RegionID, host: n.HostName, port });
      }
    }
  }
  return out;
}
