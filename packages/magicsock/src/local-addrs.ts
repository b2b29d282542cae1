/**
 * Our local endpoint candidates (magicsock.go determineEndpoints: interface addresses
 * plus the STUN-mapped address). Interface addresses: every non-internal IPv4 and IPv6
 * address except link-local IPv6 (needs a zone) — private LAN addresses included, as in
 * a netns lab two nodes on one LAN reach each other over them; never tailnet addresses
 * (100.64.0.0/10, fd7a:115c:a1e0::/48: our own TUN's). Loopback only when the
 * host has nothing else (a lone netns / CI box), so peers on the same host still connect.
 */
import { networkInterfaces, type NetworkInterfaceInfo } from "node:os";
import { Endpoint, isTailnetIp, parseIp } from "@lattice/netaddr";

/** The interface addresses to advertise, IPv4 first. `ifaces` defaults to os.networkInterfaces(). */
export function localAddresses(ifaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces(), ipv6 = true): string[] {
  const v4: string[] = [];
  const v6: string[] = [];
  const loop: string[] = [];
  for (const list of Object.values(ifaces)) {
    for (const a of list ?? []) {
      if (a.internal) {
        if (a.family === "IPv4") loop.push(a.address);
        continue;
      }
      // Our own tailnet addresses (on lattice0) are never endpoints: a peer reaching
      // them would route through the tunnel it is building.
      const ip = parseIp(a.address, true);
      if (ip === null || isTailnetIp(ip.bytes)) continue;
      if (a.family === "IPv4") v4.push(a.address);
      else if (ipv6 && !a.address.toLowerCase().startsWith("fe80:")) v6.push(a.address);
    }
  }
  const all = [...v4, ...v6];
  return all.length > 0 ? all : loop;
}

/**
 * Our endpoints: STUN-mapped addresses first, then interface addresses with our port,
 * without duplicates.
 */
export function ourEndpoints(mapped: (Endpoint | null)[], addrs: string[], port: number): Endpoint[] {
  const out: Endpoint[] = [];
  const seen = new Set<string>();
  const add = (ep: Endpoint | null): void => {
    if (ep === null) return;
    const k = ep.toString();
    if (seen.has(k)) return;
    seen.add(k);
    out.push(ep);
  };
  for (const m of mapped) add(m);
  for (const a of addrs) add(Endpoint.fromAddress(a, port));
  return out;
}
