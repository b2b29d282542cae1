/**
 * A synthetic but company-shaped tailnet for the control-plane benchmark: users in
 * groups, laptops/phones owned by people, ~20 % tagged servers, two subnet routers, and
 * a policy file written the way a real company writes one (groups, tagOwners, hosts,
 * group→tag ACLs, autogroup:self, a monitoring tag that scrapes everything, SSH accept
 * and check rules with autogroup:nonroot, autoApprovers, tests).
 *
 * Everything is derived from an injected random source, so a seed gives the same tailnet.
 * Nodes are produced as database rows (the `nodes` table shape of
 * coordination/src/db/schema.ts), so the benchmark runs the server's own row → topology
 * → compile → snapshot path.
 */

/** Deterministic PRNG (mulberry32): returns a function giving floats in [0, 1). */
export function seededRandom(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const GROUPS = ["eng", "platform", "sre", "security", "data", "sales", "support", "finance", "it", "contractors"];
/** Relative size of each group (people are drawn into groups by these weights). */
const GROUP_WEIGHTS = [30, 10, 8, 4, 10, 12, 10, 5, 4, 7];
/** Tags and their share of the tagged servers. */
const TAGS = [
  ["tag:prod", 25],
  ["tag:staging", 20],
  ["tag:db", 10],
  ["tag:web", 15],
  ["tag:ci", 10],
  ["tag:monitoring", 2],
  ["tag:k8s", 17],
  ["tag:intranet", 1],
];
const FIRST = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "zoe"];
const OSES = [
  ["macOS", "14.6.1", 40],
  ["windows", "10.0.22631", 25],
  ["linux", "6.8.0-45-generic", 15],
  ["iOS", "17.6.1", 12],
  ["android", "14", 8],
];

function pickWeighted(rand, items, weightOf) {
  let total = 0;
  for (const it of items) total += weightOf(it);
  let x = rand() * total;
  for (const it of items) {
    x -= weightOf(it);
    if (x < 0) return it;
  }
  return items[items.length - 1];
}

function hex(rand, bytes) {
  let s = "";
  for (let i = 0; i < bytes; i++) s += Math.floor(rand() * 256).toString(16).padStart(2, "0");
  return s;
}

/** A random unique tailnet IPv4 (100.64.0.0/10 minus 100.100.100.100 and 100.115.92.0/23) and its IPv6. */
function allocAddress(rand, used) {
  for (;;) {
    const n = 0x64400000 + Math.floor(rand() * 0x400000);
    const a = n >>> 24, b = (n >>> 16) & 255, c = (n >>> 8) & 255, d = n & 255;
    if (d === 0 || d === 255) continue;
    if (b === 100 && c === 100 && d === 100) continue;
    if (b === 115 && (c === 92 || c === 93)) continue;
    if (used.has(n)) continue;
    used.add(n);
    const lo = Math.floor(rand() * 0x10000);
    const v6 = `fd7a:115c:a1e0::${(n & 0xffff).toString(16)}:${lo.toString(16)}`;
    return { ipv4: `${a}.${b}.${c}.${d}`, ipv6: v6 };
  }
}

/**
 * Generates the tailnet. Options: nodes (10 000), users (50), taggedShare (0.2), rand (a
 * `() => number` in [0, 1)), now (ms, the rows' timestamps).
 * Returns { users (users-table rows), rows (nodes-table rows), groups (name → logins),
 * policyText, domain, serverUrl, mkRow(kind) for nodes that join later }.
 */
export function generateTailnet({ nodes = 10_000, users = 50, taggedShare = 0.2, rand, now }) {
  const domain = "acme.example";
  const serverUrl = "https://control.acme.example";
  const userRows = [];
  for (let i = 0; i < users; i++) {
    const name = `${FIRST[i % FIRST.length]}${i >= FIRST.length ? Math.floor(i / FIRST.length) : ""}`;
    userRows.push({ id: i + 1, name, email: `${name}@${domain}`, display_name: name[0].toUpperCase() + name.slice(1), password_hash: null, created_at: now - 90 * 86400_000 });
  }
  // Everyone is in one group; a quarter are also in a second one. sre/platform/it/security are never empty.
  const groups = Object.fromEntries(GROUPS.map((g) => [g, []]));
  userRows.forEach((u, i) => {
    const g = i < GROUPS.length ? GROUPS[i] : pickWeighted(rand, GROUPS, (x) => GROUP_WEIGHTS[GROUPS.indexOf(x)]);
    groups[g].push(u.email);
    if (rand() < 0.25) {
      const g2 = pickWeighted(rand, GROUPS, (x) => GROUP_WEIGHTS[GROUPS.indexOf(x)]);
      if (!groups[g2].includes(u.email)) groups[g2].push(u.email);
    }
  });

  const used = new Set();
  const rows = [];
  let nextId = 1;
  const nameCount = new Map();
  const uniqueName = (base) => {
    const k = (nameCount.get(base) ?? 0) + 1;
    nameCount.set(base, k);
    return k === 1 ? base : `${base}-${k}`;
  };

  /** A node row; kind: {user} for a person's device, {tags, routes} for a server. */
  const mkRow = (kind) => {
    const id = nextId++;
    const { ipv4, ipv6 } = allocAddress(rand, used);
    const tagged = kind.tags !== undefined;
    const [os, osVersion] = tagged ? ["linux", "6.1.0-25-amd64"] : pickWeighted(rand, OSES, (o) => o[2]);
    const base = tagged ? `${kind.tags[0].slice(4)}-${(id % 997).toString(36)}` : `${kind.user.name}-${os.toLowerCase()}`;
    const hostname = uniqueName(base);
    const routes = kind.routes ?? [];
    const hostinfo = { IPNVersion: "1.76.6-lattice", Hostname: hostname, OS: os, OSVersion: osVersion, GoArch: "amd64", ...(routes.length ? { RoutableIPs: routes } : {}) };
    const endpoints = [`203.0.113.${1 + (id % 250)}:${41641 + (id % 7)}`, `192.168.${id % 200}.${1 + (id % 250)}:41641`];
    const online = rand() < 0.7;
    return {
      id,
      machine_key: `mkey:${hex(rand, 32)}`,
      node_key: `nodekey:${hex(rand, 32)}`,
      disco_key: `discokey:${hex(rand, 32)}`,
      hostname,
      given_name: hostname,
      user_id: tagged ? null : kind.user.id,
      tags: JSON.stringify(kind.tags ?? []),
      ipv4,
      ipv6,
      hostinfo: JSON.stringify(hostinfo),
      endpoints: JSON.stringify(endpoints),
      home_derp: 1 + (id % 5),
      approved_routes: JSON.stringify(kind.approved ?? []),
      approved: 1,
      key_expiry: tagged ? null : now + 120 * 86400_000,
      expiry_disabled: 0,
      ephemeral: 0,
      auth_key_id: null,
      last_seen: online ? null : now - Math.floor(rand() * 7 * 86400_000),
      online: online ? 1 : 0,
      created_at: now - (nodes - id) * 60_000,
      updated_at: now - (nodes - id) * 60_000,
    };
  };

  // Two subnet routers (office and datacenter LANs, the office one with a standby).
  rows.push(mkRow({ tags: ["tag:router"], routes: ["10.10.0.0/16"] }));
  rows.push(mkRow({ tags: ["tag:router"], routes: ["10.20.0.0/16"] }));
  rows.push(mkRow({ tags: ["tag:router"], routes: ["10.10.0.0/16"], approved: ["10.10.0.0/16"] }));
  const nTagged = Math.round(nodes * taggedShare);
  for (let i = rows.length; i < nodes; i++) {
    if (i < nTagged) {
      const t = pickWeighted(rand, TAGS, (x) => x[1])[0];
      // Some prod servers also carry tag:web or tag:db.
      const tags = t === "tag:prod" && rand() < 0.4 ? [t, rand() < 0.5 ? "tag:web" : "tag:db"] : [t];
      rows.push(mkRow({ tags }));
    } else {
      rows.push(mkRow({ user: userRows[Math.floor(rand() * userRows.length)] }));
    }
  }
  // A well-known database the data team reaches by name (hosts entry with a tailnet IP).
  const billingDb = rows.find((r) => r.tags.includes("tag:db")) ?? rows[0];
  // Test subjects whose answers do not depend on a second group membership.
  const notIn = (gs) => (e) => gs.every((x) => !groups[x].includes(e));
  const someEng = groups.eng.find(notIn(["sre", "security"]));
  const someSales = groups.sales.find(notIn(["sre", "data"]));
  const policyText = policyFile({ groups, domain, billingDbIp: billingDb.ipv4, someEng, someSales });
  return { users: userRows, rows, groups, policyText, domain, serverUrl, mkRow };
}

function policyFile({ groups, domain, billingDbIp, someEng, someSales }) {
  const g = Object.entries(groups).map(([k, v]) => `    "group:${k}": ${JSON.stringify(v)},`).join("\n");
  return `// ACME Corp tailnet policy (generated by coordination/bench/tailnet.mjs)
{
  "groups": {
${g}
  },

  "tagOwners": {
    "tag:prod":       ["group:sre"],
    "tag:staging":    ["group:eng", "group:sre"],
    "tag:db":         ["group:sre"],
    "tag:web":        ["group:platform", "group:sre"],
    "tag:ci":         ["group:platform"],
    "tag:monitoring": ["group:sre"],
    "tag:k8s":        ["group:platform"],
    "tag:router":     ["group:it"],
    "tag:intranet":   ["group:it", "group:platform"],
  },

  "hosts": {
    "office-lan":   "10.10.0.0/16",
    "dc-lan":       "10.20.0.0/16",
    "printers":     "10.10.40.0/24",
    "billing-db":   "${billingDbIp}",
  },

  "autoApprovers": {
    "routes": {
      "10.10.0.0/16": ["tag:router"],
      "10.20.0.0/16": ["tag:router"],
    },
  },

  "acls": [
    // Everyone reaches their own devices.
    { "action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"] },
    // Everyone reaches the intranet (wiki, tickets, chat) and the office printers.
    { "action": "accept", "src": ["autogroup:member"], "dst": ["tag:intranet:80,443", "printers:631,9100"] },

    { "action": "accept", "src": ["group:eng"], "dst": ["tag:staging:*", "tag:ci:22,443,8080-8090"] },
    { "action": "accept", "src": ["group:sre"], "dst": ["tag:prod:*", "tag:db:5432,6379", "tag:monitoring:*", "tag:k8s:*"] },
    { "action": "accept", "src": ["group:sre"], "proto": "icmp", "dst": ["tag:prod:*", "tag:db:*"] },
    { "action": "accept", "src": ["group:platform"], "dst": ["tag:k8s:443,6443,10250", "tag:web:*", "tag:ci:*"] },
    { "action": "accept", "src": ["group:data"], "dst": ["tag:db:5432", "billing-db:5432"] },
    { "action": "accept", "src": ["group:security"], "dst": ["tag:monitoring:*", "tag:prod:22"] },
    { "action": "accept", "src": ["group:it"], "dst": ["office-lan:*", "dc-lan:*", "tag:router:22"] },
    { "action": "accept", "src": ["group:support", "group:sales", "group:finance"], "dst": ["office-lan:443", "tag:intranet:8443"] },
    { "action": "accept", "src": ["group:contractors"], "dst": ["tag:staging:443"] },

    // Service to service.
    { "action": "accept", "src": ["tag:ci"], "dst": ["tag:staging:22,443", "tag:k8s:6443"] },
    { "action": "accept", "src": ["tag:web", "tag:k8s"], "dst": ["tag:db:5432,6379"] },
    { "action": "accept", "src": ["tag:k8s"], "dst": ["dc-lan:8200"] },
    // Prometheus scrapes node_exporter everywhere.
    { "action": "accept", "src": ["tag:monitoring"], "dst": ["*:9100"] },
  ],

  "ssh": [
    { "action": "check",  "src": ["group:sre"], "dst": ["tag:prod", "tag:db"], "users": ["root", "ubuntu"], "checkPeriod": "12h" },
    { "action": "check",  "src": ["group:security"], "dst": ["tag:monitoring"], "users": ["autogroup:nonroot"], "checkPeriod": "always" },
    { "action": "accept", "src": ["group:eng", "group:platform"], "dst": ["tag:staging", "tag:ci", "tag:k8s"], "users": ["autogroup:nonroot", "deploy"] },
    { "action": "accept", "src": ["tag:ci"], "dst": ["tag:staging"], "users": ["deploy"] },
    { "action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["autogroup:nonroot", "root"] },
  ],

  "tests": [
${[
    someEng && `    { "src": "${someEng}", "accept": ["tag:staging:22", "tag:intranet:443"], "deny": ["tag:prod:22"] },`,
    someSales && `    { "src": "${someSales}", "accept": ["tag:intranet:443"], "deny": ["tag:db:5432"] },`,
  ].filter(Boolean).join("\n")}
  ],
}
`;
}
