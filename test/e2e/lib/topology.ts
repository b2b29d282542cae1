/**
 * Topologies for the mesh end-to-end tests, built from lab namespaces (lab.ts) and veth pairs
 * whose ends all live in lab namespaces.
 *
 * LAN (`buildLan`): `ctl`, `a`, `b` on one bridge (in `ctl`), 10.99.0.0/24.
 *
 *     a 10.99.0.2 ─┐
 *                  ├─ br0 in ctl (10.99.0.1)
 *     b 10.99.0.3 ─┘
 *
 * NAT (`buildNat`): a "public" namespace `pub` (control + its embedded DERP/STUN) holds the
 * internet bridge 203.0.113.0/24 (TEST-NET-3); routers `ra` and `rb` have a WAN leg on it
 * and a LAN leg to `a` / `b`. Both LANs are 192.168.1.0/24 (as at two homes): `a` is
 * 192.168.1.2 and `b` 192.168.1.3, so the local endpoints a node reports are unreachable
 * for the other one and only the NAT-mapped ones can work.
 *
 *     a 192.168.1.2 ── ra (lan 192.168.1.1, wan 203.0.113.2) ─┐
 *                                                            ├─ br0 in pub (203.0.113.1)
 *     b 192.168.1.3 ── rb (lan 192.168.1.1, wan 203.0.113.3) ─┤   relays d1 .11, d2 .12 (optional)
 *
 * The routers forward and `iptables -t nat -A POSTROUTING -o wan -j MASQUERADE`. Linux NAT
 * (netfilter conntrack) keeps the source port when it is free, and every flow from one
 * socket gets that same port whatever the destination: endpoint-INDEPENDENT mapping (what
 * RFC 4787 asks of a NAT, and what a STUN-mapped address is worth anything for), with
 * endpoint-DEPENDENT filtering (only replies from an address:port the inside sent to pass).
 * So neither node can reach the other until both have sent towards each other's mapped
 * address: exactly the case disco's CallMeMaybe hole punching solves, and what Tailscale
 * calls an "easy" NAT. (A NAT that picks a new port per destination — `--random-fully` — is
 * "hard" NAT; the tests do not need it.) test/e2e/harness.test.ts checks both claims (the same
 * mapped address from two STUN servers; a datagram passes only through a punched hole).
 *
 * Each router also drops new connections to itself from the WAN (`INPUT -i wan ctstate NEW
 * DROP`), as every home router's firewall does. That matters for hole punching: without it
 * the router's kernel confirms a conntrack entry for the peer's early, unsolicited punch
 * datagram (addressed to the router itself, no socket there), and MASQUERADE then maps the
 * node's own outgoing flow to that same peer address:port onto ANOTHER port (the entry's
 * tuple is taken) for the 30 s of nf_conntrack_udp_timeout: the two sides' punches never
 * meet. Seen in this harness before the rule was added.
 *
 * `udpBlocked: true` adds, in both routers, `iptables -A FORWARD -p udp` DROP rules for
 * datagrams to and from the other router's WAN address: all UDP between the nodes is
 * dropped, UDP to pub (STUN) and to the relays still passes, so both nodes still learn
 * their mapped endpoints and try (and fail) to punch through.
 */
import type { Lab } from "./lab.js";

/** A LAN: `ctl` and the node namespaces on one bridge. */
export interface LanTopology {
  readonly kind: "lan";
  /** Full namespace names: ctl, a, b and any extra nodes asked for. */
  readonly ns: { readonly ctl: string; readonly a: string; readonly b: string; readonly [node: string]: string };
  /** IPv4 addresses (no prefix), same keys. */
  readonly ip: { readonly ctl: string; readonly a: string; readonly b: string; readonly [node: string]: string };
}

/** NAT: pub + two routers with a LAN node each (+ optional relay namespaces). */
export interface NatTopology {
  readonly kind: "nat";
  readonly ns: { readonly pub: string; readonly ra: string; readonly rb: string; readonly a: string; readonly b: string; readonly relays: readonly string[] };
  readonly ip: { readonly pub: string; readonly raWan: string; readonly rbWan: string; readonly a: string; readonly b: string; readonly relays: readonly string[] };
}

/** Options for {@link buildNat}. */
export interface NatOptions {
  /** Drop all UDP between the two routers' WAN addresses (both directions, in both routers). */
  readonly udpBlocked?: boolean;
  /** Extra "public" namespaces on the internet bridge, e.g. for lattice-derp relays (203.0.113.11, .12, …). */
  readonly relays?: number;
}

/** Builds the LAN topology: ctl 10.99.0.1, a .2, b .3, then each of `extra` (.4, …). */
export async function buildLan(lab: Lab, extra: readonly string[] = []): Promise<LanTopology> {
  const ctl = await lab.addNs("ctl");
  const names = ["a", "b", ...extra];
  const ns: Record<string, string> = { ctl };
  const ip: Record<string, string> = { ctl: "10.99.0.1" };
  for (const [i, n] of names.entries()) {
    ns[n] = await lab.addNs(n);
    ip[n] = `10.99.0.${i + 2}`;
  }
  await lab.sh(`
    ip -n ${ctl} link add br0 type bridge
    ip -n ${ctl} addr add 10.99.0.1/24 dev br0
    ip -n ${ctl} link set br0 up
    n=2
    for ns in ${names.map((n) => ns[n]).join(" ")}; do
      ip -n ${ctl} link add p$n type veth peer name eth0 netns $ns
      ip -n ${ctl} link set p$n master br0 up
      ip -n $ns addr add 10.99.0.$n/24 dev eth0
      ip -n $ns link set eth0 up
      ip -n $ns route add default via 10.99.0.1
      n=$((n + 1))
    done
  `);
  return { kind: "lan", ns: ns as LanTopology["ns"], ip: ip as LanTopology["ip"] };
}

/** Builds the NAT topology (see the module comment). */
export async function buildNat(lab: Lab, o: NatOptions = {}): Promise<NatTopology> {
  const pub = await lab.addNs("pub");
  const ra = await lab.addNs("ra");
  const rb = await lab.addNs("rb");
  const a = await lab.addNs("a");
  const b = await lab.addNs("b");
  const relays: string[] = [];
  const relayIps: string[] = [];
  for (let i = 1; i <= (o.relays ?? 0); i++) {
    relays.push(await lab.addNs(`d${i}`));
    relayIps.push(`203.0.113.${10 + i}`);
  }
  const raWan = "203.0.113.2";
  const rbWan = "203.0.113.3";
  await lab.sh(`
    ip -n ${pub} link add br0 type bridge
    ip -n ${pub} addr add 203.0.113.1/24 dev br0
    ip -n ${pub} link set br0 up
    attach() { # NS IFNAME-IN-PUB ADDR
      ip -n ${pub} link add "$2" type veth peer name wan netns "$1"
      ip -n ${pub} link set "$2" master br0 up
      ip -n "$1" addr add "$3/24" dev wan
      ip -n "$1" link set wan up
    }
    attach ${ra} w-ra ${raWan}
    attach ${rb} w-rb ${rbWan}
    ${relays.map((ns, i) => `attach ${ns} w-d${i + 1} ${relayIps[i]}`).join("\n")}
    router() { # ROUTER NODE NODE-ADDR OTHER-WAN
      ip -n "$1" link add lan type veth peer name eth0 netns "$2"
      ip -n "$1" addr add 192.168.1.1/24 dev lan
      ip -n "$1" link set lan up
      ip -n "$2" addr add "$3/24" dev eth0
      ip -n "$2" link set eth0 up
      ip -n "$2" route add default via 192.168.1.1
      ip netns exec "$1" sysctl -qw net.ipv4.ip_forward=1
      ip netns exec "$1" iptables -t nat -A POSTROUTING -o wan -j MASQUERADE
      ip netns exec "$1" iptables -A INPUT -i wan -m conntrack --ctstate NEW -j DROP
      if [[ ${o.udpBlocked ? 1 : 0} == 1 ]]; then
        ip netns exec "$1" iptables -A FORWARD -p udp -d "$4" -j DROP
        ip netns exec "$1" iptables -A FORWARD -p udp -s "$4" -j DROP
      fi
    }
    router ${ra} ${a} 192.168.1.2 ${rbWan}
    router ${rb} ${b} 192.168.1.3 ${raWan}
  `);
  return {
    kind: "nat",
    ns: { pub, ra, rb, a, b, relays },
    ip: { pub: "203.0.113.1", raWan, rbWan, a: "192.168.1.2", b: "192.168.1.3", relays: relayIps },
  };
}

/**
 * Drops (blocked = true) or stops dropping (false) all UDP between the routers of a NAT topology,
 * both directions, in both routers. Lets one topology serve the direct and the relayed items.
 */
export async function setUdpBlocked(lab: Lab, t: NatTopology, blocked: boolean): Promise<void> {
  const op = blocked ? "-I" : "-D";
  for (const [router, other] of [[t.ns.ra, t.ip.rbWan], [t.ns.rb, t.ip.raWan]] as const) {
    await lab.must(["iptables", op, "FORWARD", "-p", "udp", "-d", other, "-j", "DROP"], { ns: router });
    await lab.must(["iptables", op, "FORWARD", "-p", "udp", "-s", other, "-j", "DROP"], { ns: router });
  }
  // FORWARD rules see every packet, not only new flows: an established conntrack entry does
  // not keep a path alive across the change.
}

/**
 * Subnet router + exit node (issue 10, `buildRoutes`): control and three nodes on one LAN
 * (`buildLan` with extra nodes r and e: ctl 10.99.0.1 with the bridge, a .2, (b .3, unused),
 * r .4, e .5, default route via ctl, which does NOT forward), plus three networks only one namespace reaches:
 *
 *     h 10.77.0.2/24     ── lan ── r (10.77.0.1)       the subnet router's LAN host H
 *     i 198.51.100.2/24  ── wan ── e (198.51.100.1)    the "internet" host I, only E routes to it
 *     l 192.168.50.2/24  ── lan ── a (192.168.50.1)    A's own LAN host L
 *
 * h, i and l have no default route (each answers only its connected neighbour, or what the
 * test adds); ip_forward is 0 in every namespace (the tests turn it on in r and e only).
 */
export interface RoutesTopology {
  readonly kind: "routes";
  readonly ns: { readonly ctl: string; readonly a: string; readonly r: string; readonly e: string; readonly h: string; readonly i: string; readonly l: string };
  readonly ip: {
    readonly ctl: string; readonly a: string; readonly r: string; readonly e: string;
    /** r's address on H's LAN, H, e's "internet" address, I, a's address on L's LAN, L. */
    readonly rLan: string; readonly h: string; readonly eWan: string; readonly i: string; readonly aLan: string; readonly l: string;
  };
  /** The subnet R routes. */
  readonly subnet: string;
}

export async function buildRoutes(lab: Lab): Promise<RoutesTopology> {
  const lan = await buildLan(lab, ["r", "e"]);
  const h = await lab.addNs("h");
  const i = await lab.addNs("i");
  const l = await lab.addNs("l");
  const ns = { ctl: lan.ns.ctl, a: lan.ns.a, r: lan.ns["r"]!, e: lan.ns["e"]!, h, i, l };
  await lab.sh(`
    stub() { # OWNER OWNER-IF OWNER-ADDR STUB STUB-ADDR
      ip -n "$1" link add "$2" type veth peer name eth0 netns "$4"
      ip -n "$1" addr add "$3/24" dev "$2"
      ip -n "$1" link set "$2" up
      ip -n "$4" addr add "$5/24" dev eth0
      ip -n "$4" link set eth0 up
    }
    stub ${ns.r} lan 10.77.0.1 ${h} 10.77.0.2
    stub ${ns.e} wan 198.51.100.1 ${i} 198.51.100.2
    stub ${ns.a} lan 192.168.50.1 ${l} 192.168.50.2
    for n in ${Object.values(ns).join(" ")} ${lan.ns.b}; do
      ip netns exec "$n" sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0
    done
  `);
  return {
    kind: "routes",
    ns,
    ip: {
      ctl: lan.ip.ctl, a: lan.ip.a, r: lan.ip["r"]!, e: lan.ip["e"]!,
      rLan: "10.77.0.1", h: "10.77.0.2", eWan: "198.51.100.1", i: "198.51.100.2", aLan: "192.168.50.1", l: "192.168.50.2",
    },
    subnet: "10.77.0.0/24",
  };
}
