/** A synthetic large tailnet for performance tests. */
import type { Topology } from "../src/index.js";

/** Builds `n` nodes: 2/3 user devices over `users` users, 1/3 tagged servers; a few subnet routers. */
export function syntheticTopology(n: number, users = 200): Topology {
  const topo: Topology = { users: [], nodes: {} };
  for (let u = 1; u <= users; u++) topo.users.push({ id: u, name: `user${u}`, email: `user${u}@example.com` });
  const tags = ["tag:server", "tag:db", "tag:web", "tag:router", "tag:ci"];
  for (let i = 0; i < n; i++) {
    const a = 64 + ((i >> 16) & 63);
    const ipv4 = `100.${a}.${(i >> 8) & 255}.${i & 255}`;
    const ipv6 = `fd7a:115c:a1e0::${(i + 1).toString(16)}`;
    const name = `node${i}`;
    if (i % 3 === 2) {
      const tag = tags[i % tags.length];
      const router = tag === "tag:router" && i < 2000;
      const route = router ? [`10.${(i >> 8) & 255}.${i & 255}.0/24`] : [];
      topo.nodes[name] = { hostname: name, ipv4, ipv6, tags: [tag], routable_ips: route, approved_routes: route };
    } else {
      topo.nodes[name] = { hostname: name, ipv4, ipv6, tags: [], user: `user${(i % users) + 1}`, routable_ips: [], approved_routes: [] };
    }
  }
  return topo;
}

/** A policy in the style of real tailnets: groups, tags, self access, a subnet and SSH. */
export const SYNTHETIC_POLICY = `{
  "groups": {
    "group:admins": ["user1@example.com", "user2@example.com"],
    "group:devs": ["user3@example.com", "user4@example.com", "user5@example.com", "user6@example.com"],
  },
  "tagOwners": {
    "tag:server": ["group:admins"], "tag:db": ["group:admins"], "tag:web": ["group:admins"],
    "tag:router": ["group:admins"], "tag:ci": ["group:admins"],
  },
  "hosts": { "corp": "10.0.0.0/8" },
  "acls": [
    {"action": "accept", "src": ["group:admins"], "dst": ["*:*"]},
    {"action": "accept", "src": ["group:devs"], "dst": ["tag:web:80,443", "tag:db:5432"]},
    {"action": "accept", "src": ["tag:web"], "dst": ["tag:db:5432"]},
    {"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]},
    {"action": "accept", "src": ["tag:ci"], "dst": ["tag:server:22", "corp:443"]},
  ],
  "ssh": [
    {"action": "accept", "src": ["group:admins"], "dst": ["tag:server", "tag:db"], "users": ["root", "autogroup:nonroot"]},
    {"action": "check", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["autogroup:nonroot"]},
  ],
}`;
