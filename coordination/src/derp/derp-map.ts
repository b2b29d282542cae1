/**
 * The DERP map lattice-control publishes (tailcfg.DERPMap in every full MapResponse):
 * the embedded relay's region, plus the regions of `--derp-map FILE`.
 *
 * Embedded region (Tailscale's derper run next to control, as Headscale's embedded DERP):
 * region `--derp-region-id` (900–999, default 900) with code `--derp-region-code`
 * (default "lattice") and one node `<id>a` whose HostName and DERPPort come from
 * `--server-url` (port from the URL, else 443 for https / 80 for http), STUNPort from
 * the bound STUN port (-1 when STUN is off). An http:// server URL sets the Lattice
 * extension `InsecureHTTP: true` (DERP over plain HTTP). An IP-literal host is also put
 * in IPv4/IPv6 so clients skip DNS.
 */
import { isIP } from "node:net";
import type { DERPMap, DERPNode, DERPRegion } from "@lattice/types";
import type { EmbeddedDerpConfig } from "../config.js";
import { REGION_CODE_RE } from "../config.js";
import { StartupError } from "../errors.js";

/** The embedded relay's region for `serverUrl`; `stunPort` null = STUN disabled. */
export function embeddedRegion(serverUrl: string, cfg: EmbeddedDerpConfig, stunPort: number | null): DERPRegion {
  const u = new URL(serverUrl);
  const host = u.hostname.replace(/^\[(.*)\]$/, "$1");
  const https = u.protocol === "https:";
  const node: DERPNode = {
    Name: `${cfg.regionId}a`,
    RegionID: cfg.regionId,
    HostName: host,
    DERPPort: u.port ? Number(u.port) : https ? 443 : 80,
    STUNPort: stunPort ?? -1,
  };
  if (isIP(host) === 4) node.IPv4 = host;
  if (isIP(host) === 6) node.IPv6 = host;
  if (!https) node.InsecureHTTP = true;
  return { RegionID: cfg.regionId, RegionCode: cfg.regionCode, RegionName: cfg.regionCode, Nodes: [node] };
}

/**
 * Checks a `--derp-map` file's regions (after the JSON shape check of config.ts): each
 * key is its region's `RegionID` (1–2^31), codes follow {@link REGION_CODE_RE} and are
 * unique, every node names its region, and no region takes the embedded relay's id.
 * @throws {StartupError} `config_invalid` naming `--derp-map`, the file and the region.
 */
export function checkDerpMapFile(map: DERPMap, path: string, embedded: EmbeddedDerpConfig | null): void {
  const bad = (why: string): never => {
    throw new StartupError("config_invalid", "--derp-map", path, why);
  };
  const codes = new Map<string, string>();
  if (embedded) codes.set(embedded.regionCode, "the embedded relay (--derp-region-code)");
  for (const [key, r] of Object.entries(map.Regions)) {
    if (String(r.RegionID) !== key) bad(`derpMap.Regions.${key}.RegionID: ${r.RegionID} differs from its key ${key}`);
    if (r.RegionID < 1 || r.RegionID > 0x7fffffff) bad(`derpMap.Regions.${key}.RegionID: ${r.RegionID} is not a region id (1–2147483647)`);
    if (embedded && r.RegionID === embedded.regionId) {
      bad(`derpMap.Regions.${key}: region ${key} is the embedded relay's region (--derp-region-id ${embedded.regionId}); renumber one of them, or run with --no-derp`);
    }
    if (!REGION_CODE_RE.test(r.RegionCode)) bad(`derpMap.Regions.${key}.RegionCode: ${JSON.stringify(r.RegionCode)} is not a region code (lowercase letters, digits and '-', 1–32 characters)`);
    const other = codes.get(r.RegionCode);
    if (other) bad(`derpMap.Regions.${key}.RegionCode: ${JSON.stringify(r.RegionCode)} is already used by ${other}`);
    codes.set(r.RegionCode, `region ${key}`);
    r.Nodes.forEach((n, i) => {
      if (n.RegionID !== r.RegionID) bad(`derpMap.Regions.${key}.Nodes[${i}].RegionID: ${n.RegionID} is not its region's id ${key}`);
    });
  }
}

/** The published map: the file's regions plus the embedded one; undefined when there is neither. */
export function composeDerpMap(file: DERPMap | undefined, embedded: DERPRegion | null): DERPMap | undefined {
  if (!file && !embedded) return undefined;
  const map: DERPMap = { ...(file ?? {}), Regions: { ...(file?.Regions ?? {}) } };
  if (embedded) map.Regions[String(embedded.RegionID)] = embedded;
  return map;
}
