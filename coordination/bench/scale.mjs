#!/usr/bin/env node
/**
 * Control-plane scale benchmark for lattice-control (issue 3, acceptance 5).
 *
 *   npx tsc -b && node coordination/bench/scale.mjs [options]
 *
 * Options (each also as an env var LATTICE_BENCH_<NAME>, e.g. LATTICE_BENCH_NODES=2000):
 *   --nodes N          tailnet size (10000)
 *   --users N          people (50); devices are spread over them
 *   --seed N           PRNG seed (1)
 *   --with-tests       keep the policy's `tests` block (evaluating it is very slow at scale: see README)
 *   --only PHASE       compile | netmap | join (the later phases need the earlier ones and run them)
 *   --real-streams N   also run a real server (child process, SQLite) with N real map streams
 *   --print-policy     print the generated policy file and exit
 *   --json             print the figures as one JSON object on the last line too
 *
 * Prints per-phase figures, peak memory and a final table (figure, goal, ratio).
 * Exit status: 0 when the run completed (goals missed are reported, not failed), 1 on
 * a correctness failure (a join did not reach exactly the sessions the policy says).
 */
import { parseArgs } from "node:util";
import { generateTailnet, seededRandom } from "./tailnet.mjs";
import { benchDerpMap, compiledStats, runCompile, runJoin, runNetmaps } from "./inprocess.mjs";
import { MemoryTracker, mib, ms, printTable } from "./report.mjs";

const GOALS = { compileMs: 2000, netmapMs: 1000, joinMs: 1000, memBytes: 2 * 1024 ** 3 };

function options() {
  const env = (k, d) => process.env[`LATTICE_BENCH_${k}`] ?? d;
  const { values } = parseArgs({
    options: {
      nodes: { type: "string", default: env("NODES", "10000") },
      users: { type: "string", default: env("USERS", "50") },
      seed: { type: "string", default: env("SEED", "1") },
      "with-tests": { type: "boolean", default: env("WITH_TESTS", "") === "1" },
      only: { type: "string", default: env("ONLY", "") },
      "real-streams": { type: "string", default: env("REAL_STREAMS", "0") },
      "print-policy": { type: "boolean", default: false },
      json: { type: "boolean", default: false },
    },
  });
  const int = (name, v, min) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name}: expected an integer >= ${min}, got ${JSON.stringify(v)}`);
    return n;
  };
  if (values.only && !["compile", "netmap", "join"].includes(values.only)) throw new Error(`--only: expected compile, netmap or join, got ${JSON.stringify(values.only)}`);
  return {
    nodes: int("nodes", values.nodes, 10),
    users: int("users", values.users, 1),
    seed: int("seed", values.seed, 0),
    withTests: values["with-tests"],
    only: values.only,
    realStreams: int("real-streams", values["real-streams"], 0),
    printPolicy: values["print-policy"],
    json: values.json,
  };
}

/** Removes the top-level "tests" block of the generated policy (its layout is ours). */
function withoutTests(text) {
  return text.replace(/\n {2}"tests": \[[^]*?\n {2}\],/, "");
}

async function main() {
  const o = options();
  const now = Date.UTC(2026, 10, 21, 12, 0, 0);
  const rand = seededRandom(o.seed);
  const tn = generateTailnet({ nodes: o.nodes, users: o.users, rand, now });
  tn.derpMap = benchDerpMap();
  const policyText = o.withTests ? tn.policyText : withoutTests(tn.policyText);
  if (o.printPolicy) {
    process.stdout.write(policyText);
    return 0;
  }
  const mem = new MemoryTracker();
  mem.sample("start");
  const tagged = tn.rows.filter((r) => r.user_id === null).length;
  console.log(`lattice-control scale benchmark — node ${process.version}, ${new Date().toISOString()}`);
  console.log(`tailnet: ${tn.rows.length} nodes (${tagged} tagged), ${tn.users.length} users in ${Object.keys(tn.groups).length} groups, seed ${o.seed}, policy ${policyText.length} bytes${o.withTests ? " (with its tests block)" : " (tests block removed; --with-tests keeps it)"}`);
  const figures = {};
  const table = [];

  // 1. Compile.
  const c = runCompile(tn, policyText, mem);
  const st = compiledStats(c.compiled);
  figures.compile = { ...c, policy: undefined, inc: undefined, compiled: undefined, stats: st };
  console.log(`\n[compile] parse ${ms(c.parseMs)}, topology ${ms(c.topologyMs)}, compile ${ms(c.compileMs)} → total ${ms(c.totalMs)} (CPU ${ms(c.cpuMs)})`);
  console.log(`          ${st.nodes} nodes, ${st.peers} peer entries (avg ${(st.peers / st.nodes).toFixed(0)}, max ${st.maxPeers}), ${st.rules} filter rules, ${st.ssh} SSH rules, ${st.distinctPeerLists} distinct peer lists`);
  table.push({ figure: "compile policy (all nodes)", value: c.totalMs, unit: "ms", goal: GOALS.compileMs, note: `${st.peers} peer entries (avg ${(st.peers / st.nodes).toFixed(0)} per node)` });

  let ok = true;
  if (o.only !== "compile") {
    // 2. Full netmaps.
    const n = runNetmaps(tn, c.policy, c.compiled, now, mem);
    figures.netmap = { buildMs: n.buildMs, fullMs: n.fullMs, encodeMs: n.encodeMs, totalMs: n.totalMs, cpuMs: n.cpuMs, bytes: n.bytes, maxBytes: n.maxBytes, peerEntries: n.peerEntries };
    console.log(`\n[netmap]  snapshot ${ms(n.buildMs)}, MapSession.full ${ms(n.fullMs)}, JSON ${ms(n.encodeMs)} → total ${ms(n.totalMs)} (CPU ${ms(n.cpuMs)})`);
    console.log(`          ${n.sessions.length} netmaps, ${n.peerEntries} peers, ${mib(n.bytes)} of JSON (largest ${mib(n.maxBytes)})`);
    table.push({ figure: "every node's full netmap", value: n.totalMs, unit: "ms", goal: GOALS.netmapMs, note: `incl. snapshot build and JSON (${mib(n.bytes)})` });

    if (o.only !== "netmap") {
      // 3. Joins.
      const ctx = { rows: tn.rows, policy: c.policy, inc: c.inc, compiled: c.compiled, idOf: n.idOf, nodeCache: n.nodeCache, viewCache: n.viewCache, jsonCache: n.jsonCache, sessions: n.sessions, state: n.state };
      // Hold only what the server holds (the current compile/snapshot lives in ctx from here on).
      c.compiled = null;
      c.inc = null;
      n.state = null;
      const engUser = tn.users.find((u) => tn.groups.eng.includes(u.email)) ?? tn.users[0];
      // Incremental compiles first: the full recompile (the pre-incremental server path, for
      // comparison) drops the incremental state.
      const joins = [
        ["laptop joins (server path)", tn.mkRow({ user: engUser }), "server", true],
        ["prod server joins (server path)", tn.mkRow({ tags: ["tag:prod"] }), "server", true],
        ["laptop joins (scoped fan-out only)", tn.mkRow({ user: engUser }), "scoped", true],
        ["laptop joins (server path, full recompile)", tn.mkRow({ user: engUser }), "server", false],
      ];
      figures.joins = [];
      let version = 2;
      for (const [label, row, mode, incremental] of joins) {
        const j = runJoin(tn, ctx, row, mode, version++, now, mem, incremental);
        figures.joins.push({ label, ...j });
        const good = j.reached === j.expected;
        ok &&= good;
        console.log(`\n[join]    ${label}: ${j.incremental ? `incremental compile ${ms(j.compileMs)} (${j.touched} nodes touched)` : `recompile ${ms(j.compileMs)}`}, diff ${ms(j.diffMs)} (${j.policyChangedFor} views changed), snapshot ${ms(j.buildMs)}, deltas to ${j.sessions} sessions ${ms(j.fanoutMs)} → ${ms(j.totalMs)} (CPU ${ms(j.cpuMs)})`);
        console.log(`          ${j.withDelta} sessions got a delta (${mib(j.bytes)}), ${j.reached} got the new peer (policy says ${j.expected})${good ? "" : "  ← MISMATCH"}; its own full netmap ${ms(j.ownFullMs)} (${mib(j.ownBytes)})`);
        table.push({ figure: `join → all peers' streams: ${label}`, value: j.totalMs, unit: "ms", goal: GOALS.joinMs });
      }
    }
  }

  if (o.realStreams > 0) {
    const { runRealServer } = await import("./real-server.mjs");
    const owner = tn.users.find((u) => tn.groups.eng.includes(u.email)) ?? tn.users[0];
    const r = await runRealServer({ tn, policyText, streams: o.realStreams, owner });
    figures.real = r;
    if (r.error) {
      console.log(`\n[real]    failed: ${r.error}`);
      ok = false;
    } else {
      table.push({ figure: "real server: start with stored tailnet", value: r.startMs, unit: "ms", goal: null });
      table.push({ figure: `real server: join → ${r.streams} real streams`, value: r.joinMs, unit: "ms", goal: GOALS.joinMs, note: `${r.reached}/${r.streams} streams got the new peer` });
      table.push({ figure: "real server: peak memory (VmHWM)", value: r.serverPeakRss, unit: "bytes", goal: GOALS.memBytes, note: `the server child runs with ${Number(process.env.LATTICE_BENCH_SERVER_HEAP ?? "8192") > 0 ? `--max-old-space-size=${process.env.LATTICE_BENCH_SERVER_HEAP ?? "8192"}` : "Node's default heap limit"} (LATTICE_BENCH_SERVER_HEAP)` });
      if (r.reached !== r.streams) ok = false;
    }
  }

  mem.sample("end");
  const maxRss = Math.max(mem.maxRss(), mem.peakRss);
  figures.memory = { maxRss, peakRssSampled: mem.peakRss, peakHeapUsed: mem.peakHeapUsed, peakHeapTotal: mem.peakHeapTotal, peakExternal: mem.peakExternal };
  console.log(`\n[memory]  max RSS ${mib(maxRss)} (resourceUsage().maxRSS), sampled peak RSS ${mib(mem.peakRss)}, peak heap used ${mib(mem.peakHeapUsed)} / total ${mib(mem.peakHeapTotal)}`);
  for (const s of mem.samples) console.log(`          ${s.label.padEnd(26)} rss ${mib(s.rss).padStart(11)}  heap ${mib(s.heapUsed).padStart(11)}`);
  table.push({ figure: "peak memory (max RSS of this process)", value: maxRss, unit: "bytes", goal: GOALS.memBytes });

  console.log("");
  printTable(table);
  console.log("(the acceptance names three goals for four figures; the join is held to 1 s here)");
  if (o.json) console.log(JSON.stringify({ options: o, figures }));
  if (!ok) {
    console.error("FAILED: a join did not reach exactly the sessions the compiled policy says should see it, or the real-server run failed");
    return 1;
  }
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    console.error(`scale benchmark: ${e instanceof Error ? e.message : String(e)}`);
    if (process.env.LATTICE_BENCH_DEBUG) console.error(e);
    process.exitCode = 2;
  },
);
