/**
 * The real-server figure: a `lattice-control serve` child process on a SQLite file that
 * already holds the generated tailnet (rows written before start, so the server loads,
 * compiles and snapshots it like after a restart), R real nodes that register with an
 * auth key over Noise + HTTP/2 (@lattice/control-client) and keep map streams open, then
 * one more registration: the time until every real stream has the new peer.
 * The simulated nodes have no streams, so this shows transport + recompile, not fan-out
 * to 10,000 sessions (the in-process figure covers that).
 */
import { spawn, execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { ControlClient, noiseKeyPair } from "@lattice/control-client";
import { formatKey } from "@lattice/types";

const MAIN = fileURLToPath(new URL("../dist/main.js", import.meta.url));

function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

function runCli(args) {
  return new Promise((res) => {
    execFile(process.execPath, [MAIN, ...args], { timeout: 120_000 }, (error, stdout, stderr) => {
      res({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** Starts the server; resolves with {proc, ms} once it printed its admin socket line. */
async function startServer(args, timeoutMs) {
  const t0 = performance.now();
  // LATTICE_BENCH_SERVER_HEAP: the child's --max-old-space-size in MiB (default 8192; 0 = Node's default).
  const heap = Number(process.env.LATTICE_BENCH_SERVER_HEAP ?? "8192");
  const proc = spawn(process.execPath, [...(heap > 0 ? [`--max-old-space-size=${heap}`] : []), MAIN, "serve", ...args], {
    env: { ...process.env, LATTICE_CONTROL_LOG_LEVEL: "warn", LATTICE_CONTROL_STUN_PORT: "0" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  proc.stdout.on("data", (c) => (out += c));
  proc.stderr.on("data", (c) => (out += c));
  const exited = new Promise((r) => proc.once("exit", r));
  await new Promise((res, rej) => {
    const t = setTimeout(() => rej(new Error(`server did not start in ${timeoutMs} ms: ${out.slice(-2000)}`)), timeoutMs);
    const check = () => {
      if (out.includes("admin socket:")) {
        clearTimeout(t);
        res();
      }
    };
    proc.stdout.on("data", check);
    proc.once("exit", (code) => {
      clearTimeout(t);
      rej(new Error(`server exited with ${code}: ${out.slice(-2000)}`));
    });
  });
  return {
    proc,
    ms: performance.now() - t0,
    output: () => out,
    /** The child's peak RSS in bytes (VmHWM), or 0 when unreadable. */
    peakRss() {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${proc.pid}/status`, "utf8"));
        return m ? Number(m[1]) * 1024 : 0;
      } catch {
        return 0;
      }
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
      await exited;
    },
  };
}

/** Writes users, nodes and the policy straight into the (migrated) database. */
function seedDatabase(dbPath, tn, policyText) {
  const db = new Database(dbPath);
  try {
    const cols = Object.keys(tn.rows[0]);
    const insNode = db.prepare(`INSERT INTO nodes (${cols.join(",")}) VALUES (${cols.map((c) => "@" + c).join(",")})`);
    const insUser = db.prepare("INSERT INTO users (id, name, email, display_name, password_hash, created_at) VALUES (@id, @name, @email, @display_name, @password_hash, @created_at)");
    db.transaction(() => {
      for (const u of tn.users) insUser.run(u);
      for (const r of tn.rows) insNode.run(r);
      db.prepare("INSERT INTO policies (text, created_at) VALUES (?, ?)").run(policyText, Date.now());
    })();
  } finally {
    db.close();
  }
}

/** A real node: keys, connection, registration, map stream consumer. */
class RealNode {
  constructor(url, hostname) {
    this.url = url;
    this.hostname = hostname;
    this.machine = noiseKeyPair(new Uint8Array(randomBytes(32)));
    this.nodeKey = formatKey("node", new Uint8Array(randomBytes(32)));
    this.discoKey = formatKey("disco", new Uint8Array(randomBytes(32)));
  }

  async connect() {
    this.client = await ControlClient.connect({ serverUrl: this.url, machineKey: this.machine });
  }

  async register(authKey) {
    if (!this.client) await this.connect();
    const r = await this.client.register({ Version: 100, NodeKey: this.nodeKey, Hostinfo: { Hostname: this.hostname, OS: "linux" }, Auth: { AuthKey: authKey } });
    if (!r.MachineAuthorized) throw new Error(`${this.hostname}: not authorized: ${r.Error || JSON.stringify(r)}`);
  }

  /** Opens the stream; resolves after the first (full) netmap. `onMsg(msg, now)` sees every message. */
  async stream(onMsg) {
    this.map = this.client.map({ Version: 100, NodeKey: this.nodeKey, DiscoKey: this.discoKey, Stream: true, Hostinfo: { Hostname: this.hostname, OS: "linux" }, Endpoints: ["192.0.2.1:41641"] });
    const it = this.map[Symbol.asyncIterator]();
    const first = await it.next();
    if (first.done) throw new Error(`${this.hostname}: map stream ended before the first netmap`);
    this.peers = first.value.Peers?.length ?? 0;
    this.loop = (async () => {
      for (;;) {
        const m = await it.next().catch(() => ({ done: true }));
        if (m.done) return;
        onMsg(this, m.value, performance.now());
      }
    })();
  }

  close() {
    this.map?.close();
    this.client?.close();
  }
}

async function inBatches(items, size, fn) {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
}

/**
 * Runs the figure. Returns {streams, startMs, connectMs, registerMs, joinMs, reached,
 * peersPerStream, serverPeakRss} or {error} when the server path does not work.
 */
export async function runRealServer({ tn, policyText, streams, owner, log = console.log }) {
  const dir = mkdtempSync(join(tmpdir(), "lattice-bench-"));
  const db = join(dir, "lattice.db");
  const socket = join(dir, "control.sock");
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const args = ["--listen", `127.0.0.1:${port}`, "--server-url", url, "--db", db, "--socket", socket];
  let server;
  const nodes = [];
  try {
    server = await startServer(args, 60_000); // creates and migrates the database
    await server.stop();
    seedDatabase(db, tn, policyText);
    server = await startServer(args, 600_000);
    const startMs = server.ms;
    log(`\n[real]    server with ${tn.rows.length} stored nodes started in ${(startMs / 1000).toFixed(1)} s (load, compile, snapshot)`);
    const k = await runCli(["--socket", socket, "keys", "create", "--user", owner.name, "--reusable", "--preapproved"]);
    if (k.code !== 0) throw new Error(`keys create: ${k.stderr || k.stdout}`);
    const authKey = k.stdout.trim().split(/\s+/).pop();

    let joinHost = null;
    const seen = new Map();
    const onMsg = (node, msg, now) => {
      if (joinHost && !seen.has(node) && msg.PeersChanged?.some((p) => p.Hostinfo?.Hostname === joinHost || p.Name?.startsWith(`${joinHost}.`))) seen.set(node, now);
    };
    for (let i = 0; i < streams; i++) nodes.push(new RealNode(url, `bench-real-${i}`));
    const t0 = performance.now();
    for (const n of nodes) await n.register(authKey); // each registration recompiles: sequential is what the server does anyway
    const registerMs = performance.now() - t0;
    const t1 = performance.now();
    await inBatches(nodes, 50, (n) => n.stream(onMsg));
    const connectMs = performance.now() - t1;
    log(`          ${streams} real nodes registered in ${(registerMs / 1000).toFixed(1)} s (${(registerMs / streams).toFixed(0)} ms each), streams open in ${(connectMs / 1000).toFixed(1)} s, ${Math.round(nodes.reduce((a, n) => a + n.peers, 0) / streams)} peers each`);
    await new Promise((r) => setTimeout(r, 2000)); // let online-change deltas settle

    const joiner = new RealNode(url, "bench-real-joiner");
    await joiner.connect();
    joinHost = joiner.hostname;
    const tj = performance.now();
    await joiner.register(authKey);
    const regDone = performance.now();
    nodes.push(joiner);
    const deadline = Date.now() + 600_000;
    while (seen.size < streams && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    const last = Math.max(...seen.values());
    const result = {
      streams,
      startMs,
      registerMs,
      connectMs,
      joinRegisterMs: regDone - tj,
      joinMs: seen.size > 0 ? last - tj : null,
      reached: seen.size,
      serverPeakRss: server.peakRss(),
    };
    log(`          join: register answered in ${result.joinRegisterMs.toFixed(0)} ms, ${seen.size}/${streams} streams had the new peer after ${result.joinMs?.toFixed(0)} ms; server peak RSS ${(result.serverPeakRss / 2 ** 20).toFixed(0)} MiB`);
    return result;
  } catch (e) {
    return { error: e instanceof Error ? e.message : String(e) };
  } finally {
    for (const n of nodes) n.close();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
