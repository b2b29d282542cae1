/**
 * The in-process phases of the control-plane benchmark, run on the server's own code
 * path (built dist/): rows → topologyFrom → parsePolicy/compilePolicyCompact → buildState
 * (the node backend's snapshot) → MapSession.full + encodeMapResponse per node → a join
 * handled as ControlNodeBackend handles {nodesAdded} (NetmapBuilder's steps one by one:
 * recompile, diff against the previous compilation by node id, rebuild; publish
 * {nodesAdded, policyChangedFor}) and delivered to every
 * session with MapSession.delta. CPU times (process.cpuUsage, user + system) are reported
 * next to wall times because the machine is shared.
 */
import { IncrementalCompiler, compilePolicyCompact, parsePolicy } from "../../packages/policy/dist/index.js";
import { topologyFrom } from "../dist/services/topology.js";
import { buildState } from "../dist/services/netmap-state.js";
import { changedNodes, idsOf } from "../dist/services/policy-diff.js";
import { MapSession, NodeJsonCache, encodeMapResponse } from "../dist/mapper/index.js";

/** A DERP map shaped like a small self-hosted deployment (5 regions). */
export function benchDerpMap() {
  const Regions = {};
  for (let i = 1; i <= 5; i++) {
    Regions[i] = { RegionID: i, RegionCode: `r${i}`, RegionName: `Region ${i}`, Nodes: [{ Name: `${i}a`, RegionID: i, HostName: `derp${i}.acme.example`, DERPPort: 443, STUNPort: 3478 }] };
  }
  return { Regions };
}

/** CPU milliseconds (user + system) since `start` (a process.cpuUsage() value). */
export function cpuMs(start) {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1000;
}

/** Counts what a compilation produced (peer entries are the size driver of everything after). */
export function compiledStats(compiled) {
  let nodes = 0, peers = 0, rules = 0, ssh = 0, maxPeers = 0;
  const lists = new Set();
  compiled.nodes.forEach((c, j) => {
    nodes++;
    lists.add(c.peers.list);
    const p = c.peers.list.length - (c.peers.list.includes(j) ? 1 : 0);
    peers += p;
    if (p > maxPeers) maxPeers = p;
    rules += c.packetFilter.length;
    ssh += c.ssh?.length ?? 0;
  });
  return { nodes, peers, maxPeers, rules, ssh, distinctPeerLists: lists.size };
}

/** Phase 1: parse + topology + compile. */
export function runCompile(tn, policyText, mem) {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const policy = parsePolicy(policyText);
  const t1 = performance.now();
  const topology = topologyFrom(tn.users, tn.rows);
  const t2 = performance.now();
  // The server's compiler: a full compile that keeps its state for incremental joins.
  const inc = new IncrementalCompiler(policy, { serverUrl: tn.serverUrl });
  const compiled = inc.compile(topology).compiled;
  const t3 = performance.now();
  const cpu = cpuMs(cpu0);
  mem.sample("after compile");
  return { policy, inc, compiled, parseMs: t1 - t0, topologyMs: t2 - t1, compileMs: t3 - t2, totalMs: t3 - t0, cpuMs: cpu };
}

function stateInputs(tn, policy, rows, version, now) {
  return {
    version,
    domain: tn.domain,
    derpMap: tn.derpMap,
    dnsConfig: { Resolvers: [], Domains: [tn.domain], Proxied: true },
    users: tn.users,
    rows,
    policy,
    serverUrl: tn.serverUrl,
    now,
  };
}

/**
 * Phase 2: the snapshot and every node's full netmap, as each map stream produces its
 * first message (MapSession.full, then encodeMapResponse with the shared per-Node JSON cache).
 * Keeps the sessions (they are what later deltas run against).
 */
export function runNetmaps(tn, policy, compiled, now, mem) {
  const nodeCache = new Map();
  const viewCache = {};
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const state = buildState(stateInputs(tn, policy, tn.rows, 1, now), compiled, nodeCache, viewCache);
  const t1 = performance.now();
  const jsonCache = new NodeJsonCache();
  const sessions = [];
  let fullMs = 0, encodeMs = 0, bytes = 0, maxBytes = 0, peerEntries = 0;
  let i = 0;
  for (const id of state.nodes.keys()) {
    const a = performance.now();
    const s = new MapSession(id);
    const resp = s.full(state);
    const b = performance.now();
    const json = encodeMapResponse(resp, jsonCache);
    const c = performance.now();
    fullMs += b - a;
    encodeMs += c - b;
    bytes += json.length;
    if (json.length > maxBytes) maxBytes = json.length;
    peerEntries += resp.Peers?.length ?? 0;
    sessions.push(s);
    if (++i % 1000 === 0) mem.sample();
  }
  const t2 = performance.now();
  const cpu = cpuMs(cpu0);
  mem.sample("after full netmaps");
  const idOf = idsOf(compiled);
  return { state, nodeCache, viewCache, idOf, jsonCache, sessions, buildMs: t1 - t0, fullMs, encodeMs, totalMs: t2 - t0, cpuMs: cpu, bytes, maxBytes, peerEntries };
}

/**
 * Phase 3: one node joins. mode "server": what ControlNodeBackend does for {nodesAdded}
 * (recompile everything, diff against the previous compilation, rebuild the snapshot,
 * publish {nodesAdded, policyChangedFor: the nodes whose compiled view changed});
 * mode "scoped": the snapshot is prepared untimed and only {nodesAdded} is delivered, the
 * lower bound an incremental, change-scoped compiler could reach.
 * Checks that exactly the sessions whose compiled peers include the new node received it.
 */
export function runJoin(tn, ctx, newRow, mode, version, now, mem, incremental = true) {
  const rows = [...ctx.rows, newRow];
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let compiled, state, changed, touched = null, compileMs = 0, diffMs = 0, buildMs = 0;
  const compileAndBuild = () => {
    const a = performance.now();
    const topology = topologyFrom(tn.users, rows);
    if (incremental) {
      // What ControlNodeBackend does by default: recompute only what depends on the new node.
      const r = ctx.inc.compile(topology);
      compiled = r.compiled;
      touched = r.touched;
    } else {
      compiled = compilePolicyCompact(ctx.policy, topology, { serverUrl: tn.serverUrl });
      ctx.inc = null; // its state no longer matches the server's compilation
    }
    const b = performance.now();
    const idOf = idsOf(compiled);
    changed = changedNodes({ compiled: ctx.compiled, idOf: ctx.idOf }, { compiled, idOf }, touched ?? undefined);
    ctx.compiled = compiled;
    ctx.idOf = idOf;
    const c = performance.now();
    state = buildState(stateInputs(tn, ctx.policy, rows, version, now), compiled, ctx.nodeCache, ctx.viewCache);
    compileMs = b - a;
    diffMs = c - b;
    buildMs = performance.now() - c;
  };
  compileAndBuild();
  const change = mode === "server" ? { version, nodesAdded: [newRow.id], policyChangedFor: changed } : { version, nodesAdded: [newRow.id] };
  const cpuFan = process.cpuUsage();
  const t1 = performance.now();
  let withDelta = 0, reached = 0, bytes = 0, i = 0;
  for (const s of ctx.sessions) {
    const d = s.delta(change, state);
    if (d.response) {
      withDelta++;
      bytes += encodeMapResponse(d.response, ctx.jsonCache).length;
      if (d.response.PeersChanged?.some((p) => p.ID === newRow.id)) reached++;
    }
    if (++i % 1000 === 0) mem.sample();
  }
  const t2 = performance.now();
  const cpu = mode === "server" ? cpuMs(cpu0) : cpuMs(cpuFan);
  mem.sample(`after join (${mode})`);
  // The new node's own stream starts with a full netmap.
  const own = new MapSession(newRow.id);
  const ownJson = encodeMapResponse(own.full(state), ctx.jsonCache);
  const t3 = performance.now();
  let expected = 0;
  const newIdx = compiled.names.indexOf(newRow.given_name);
  compiled.nodes.forEach((c, j) => {
    if (j !== newIdx && c.peers.list.includes(newIdx)) expected++;
  });
  ctx.sessions.push(own);
  ctx.rows = rows;
  ctx.state = state;
  return {
    mode,
    incremental: touched !== null,
    touched: touched?.length ?? null,
    compileMs,
    diffMs,
    policyChangedFor: mode === "server" ? changed.length : 0,
    buildMs,
    cpuMs: cpu,
    fanoutMs: t2 - t1,
    ownFullMs: t3 - t2,
    // From the change to the last affected session's delta (what a peer waits for).
    totalMs: mode === "server" ? t2 - t0 : t2 - t1,
    sessions: ctx.sessions.length - 1,
    withDelta,
    reached,
    expected,
    bytes,
    ownBytes: ownJson.length,
  };
}
