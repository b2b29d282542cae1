/**
 * The Lattice programs as a user runs them, inside lab namespaces: `lattice-control` (serve +
 * its admin CLI), `lattice-derp`, `latticed` and the `lattice` CLI. Only their public
 * surface is used (flags, CLI commands, printed output); entry files are found through each
 * package's `bin` field, so they are what `pnpm exec <program>` runs.
 *
 * Ports: each server runs in a namespace of its own (nothing else listens there), so it gets
 * the well-known port a user would give it (control 8080, DERP 80/3478); no collision is
 * possible, unlike on the shared host.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import { GiveUp, until, type ExecResult, type Lab, type LabProc } from "./lab.js";

/** Repository root (this file is test/e2e/lib/programs.ts). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

/**
 * The file `pnpm exec <program>` runs: package `pkgDir`'s bin entry `program`. Throws a clear
 * message when the package does not declare it or it is not built.
 */
export function programEntry(pkgDir: string, program: string): string {
  const pkgFile = join(repoRoot, pkgDir, "package.json");
  if (!existsSync(pkgFile)) throw new Error(`${pkgDir}/package.json missing: ${program} is not in this checkout`);
  const pkg = JSON.parse(readFileSync(pkgFile, "utf8")) as { bin?: Record<string, string> | string };
  const bin = typeof pkg.bin === "string" ? pkg.bin : pkg.bin?.[program];
  if (bin === undefined) throw new Error(`${pkgDir}/package.json declares no bin "${program}"`);
  const file = join(repoRoot, pkgDir, bin);
  // bin/*.js are one-line wrappers importing ../dist/...: check the build, not just the wrapper.
  const text = readFileSync(file, "utf8");
  for (const m of text.matchAll(/import\s+["'](\.\.?\/[^"']+)["']/g)) {
    const target = resolve(dirname(file), m[1]!);
    if (!existsSync(target)) throw new Error(`${program}: ${target} missing: run \`pnpm exec tsc -b\` first`);
  }
  return file;
}

/** `node <entry>`: the argv prefix of a program. */
export function programArgv(pkgDir: string, program: string): string[] {
  return [process.execPath, programEntry(pkgDir, program)];
}

// ---------------------------------------------------------------------------------------------
// lattice-control

/** A running lattice-control in a namespace. */
export interface Control {
  readonly proc: LabProc;
  /** The URL nodes use (`--server-url`). */
  readonly url: string;
  readonly socket: string;
  readonly dir: string;
  /** Runs `lattice-control --socket SOCKET ...args` (the admin CLI, over the admin socket). */
  admin(args: readonly string[], input?: string): Promise<ExecResult>;
  /** Like admin() but throws unless it exits 0; returns stdout. */
  adminOk(args: readonly string[], input?: string): Promise<string>;
  /** Stops the server (SIGTERM). */
  stop(): Promise<void>;
  /** Starts it again with the same database, socket and flags. */
  restart(): Promise<void>;
}

/** Options for {@link startControl}. */
export interface ControlOptions {
  /** Namespace (full name) and the address nodes reach it at. */
  readonly ns: string;
  readonly ip: string;
  readonly port?: number;
  /** Extra `serve` flags (e.g. `--derp-map FILE`, `--no-derp`, `--ephemeral-timeout 5s`). */
  readonly args?: readonly string[];
  /** Extra environment (e.g. LATTICE_CONTROL_SWEEP_INTERVAL). */
  readonly env?: Readonly<Record<string, string>>;
  /** Name of the log / state directory (default "control"). */
  readonly name?: string;
}

/** Starts `lattice-control serve` in a namespace and waits until it announces its admin socket. */
export async function startControl(lab: Lab, o: ControlOptions): Promise<Control> {
  const name = o.name ?? "control";
  const dir = join(lab.dir, name);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const port = o.port ?? 8080;
  const url = `http://${o.ip}:${port}`;
  const socket = join(dir, "control.sock");
  const argv = [
    ...programArgv("coordination", "lattice-control"),
    "serve",
    "--listen",
    `0.0.0.0:${port}`,
    "--server-url",
    url,
    "--db",
    join(dir, "lattice.db"),
    "--socket",
    socket,
    ...(o.args ?? []),
  ];
  const env = { LATTICE_CONTROL_LOG_LEVEL: "info", ...o.env };
  let runs = 0;
  const launch = async (): Promise<LabProc> => {
    const p = lab.spawn(runs++ === 0 ? name : `${name}-${runs}`, o.ns, argv, { env });
    await p.waitForLog(/admin socket:/, 30_000);
    return p;
  };
  let proc = await launch();
  const admin = (args: readonly string[], input?: string): Promise<ExecResult> =>
    lab.run(null, [...programArgv("coordination", "lattice-control"), "--socket", socket, ...args], input === undefined ? {} : { input });
  const control: Control = {
    get proc() {
      return proc;
    },
    url,
    socket,
    dir,
    admin,
    async adminOk(args, input) {
      const r = await admin(args, input);
      if (r.code !== 0) throw new Error(`lattice-control ${args.join(" ")} failed (${r.code}): ${r.stderr.trim()} ${r.stdout.trim()}`);
      return r.stdout;
    },
    async stop() {
      await proc.stop();
    },
    async restart() {
      await proc.stop();
      proc = await launch();
    },
  };
  return control;
}

/** Creates user `name` (owner if first) and returns a fresh auth key for it. */
export async function createUser(control: Control, name: string): Promise<void> {
  await control.adminOk(["users", "create", name]);
}

/** `lattice-control keys create --user USER [flags]`: returns the printed key. */
export async function createAuthKey(control: Control, user: string, flags: readonly string[] = ["--reusable", "--preapproved"]): Promise<string> {
  const out = (await control.adminOk(["keys", "create", "--user", user, ...flags])).trim();
  const key = out.split(/\s+/).find((w) => w.startsWith("lkey-"));
  if (key === undefined) throw new Error(`keys create printed no lkey-…: ${out}`);
  return key;
}

/** Writes a policy (huJSON text) to a file and `policy set`s it. */
export async function setPolicy(lab: Lab, control: Control, policy: string): Promise<void> {
  const f = join(lab.dir, `policy-${randomBytes(3).toString("hex")}.hujson`);
  writeFileSync(f, policy);
  await control.adminOk(["policy", "set", f]);
}

// ---------------------------------------------------------------------------------------------
// lattice-derp

/** A running lattice-derp. */
export interface Relay {
  readonly proc: LabProc;
  readonly ip: string;
  readonly derpPort: number;
  readonly stunPort: number;
  /** `http://IP:PORT`: its DERP URL base (plain HTTP; DERP map nodes carry InsecureHTTP). */
  readonly url: string;
}

/**
 * Starts `lattice-derp` in a namespace: plain HTTP DERP on `port` (default 80, which also
 * serves /derp/probe), STUN on 3478; `--mesh-with`/`--mesh-key-file` when mesh is given.
 */
export async function startRelay(lab: Lab, o: { ns: string; ip: string; name: string; port?: number; mesh?: { urls: readonly string[]; keyFile: string } }): Promise<Relay> {
  const port = o.port ?? 80;
  const argv = [...programArgv("derp", "lattice-derp"), "--listen", `:${port}`, "--http-port", String(port), "--stun-port", "3478"];
  if (o.mesh !== undefined) argv.push("--mesh-with", o.mesh.urls.join(","), "--mesh-key-file", o.mesh.keyFile);
  const proc = lab.spawn(o.name, o.ns, argv);
  await proc.waitForLog(/lattice-derp listening/, 30_000);
  return { proc, ip: o.ip, derpPort: port, stunPort: 3478, url: `http://${o.ip}:${port}` };
}

/** A fresh mesh key file (64 hex digits, mode 0600) in the lab directory. */
export function writeMeshKey(lab: Lab): string {
  const f = join(lab.dir, "mesh.key");
  writeFileSync(f, randomBytes(32).toString("hex") + "\n", { mode: 0o600 });
  chmodSync(f, 0o600);
  return f;
}

/** One DERP map node (tailcfg.DERPNode) for a plain-HTTP lattice-derp. */
export interface DerpNodeSpec {
  readonly name: string;
  readonly ip: string;
  readonly derpPort: number;
  readonly stunPort: number;
}

/**
 * Writes a tailcfg.DERPMap file for `--derp-map`: one region per entry, nodes in the order
 * given (plain HTTP: `InsecureHTTP: true`, the Lattice extension for lab relays).
 */
export function writeDerpMap(lab: Lab, file: string, regions: ReadonlyArray<{ id: number; code: string; nodes: readonly DerpNodeSpec[] }>): string {
  const map = {
    Regions: Object.fromEntries(
      regions.map((r) => [
        String(r.id),
        {
          RegionID: r.id,
          RegionCode: r.code,
          RegionName: r.code,
          Nodes: r.nodes.map((n) => ({ Name: n.name, RegionID: r.id, HostName: n.ip, IPv4: n.ip, DERPPort: n.derpPort, STUNPort: n.stunPort, InsecureHTTP: true })),
        },
      ]),
    ),
  };
  const path = join(lab.dir, file);
  writeFileSync(path, JSON.stringify(map, null, 2));
  return path;
}

// ---------------------------------------------------------------------------------------------
// latticed + lattice

/** A node: one latticed in a namespace and the lattice CLI pointed at its socket. */
export interface LatticeNode {
  readonly name: string;
  readonly ns: string;
  readonly stateDir: string;
  readonly socket: string;
  /** The current latticed process. */
  readonly proc: LabProc;
  /** Runs `lattice --socket SOCKET ...args` in the node's namespace. */
  lattice(args: readonly string[], o?: { timeoutMs?: number }): Promise<ExecResult>;
  /** Like lattice() but throws unless it exits 0; returns stdout. */
  latticeOk(args: readonly string[], o?: { timeoutMs?: number }): Promise<string>;
  /** `lattice status --json`, parsed (Tailscale's ipnstate.Status shape). */
  status(): Promise<StatusJson>;
  /** Starts latticed again with the same state directory and socket (after stop/kill9). */
  start(): Promise<void>;
  stop(): Promise<void>;
  kill9(): Promise<void>;
}

/** The fields of `lattice status --json` the tests read (docs/localapi.md). */
export interface StatusJson {
  BackendState: string;
  TailscaleIPs?: string[] | null;
  Health?: string[] | null;
  Self?: PeerStatusJson;
  Peer?: Record<string, PeerStatusJson> | null;
  /** Only while an exit node is selected (issue 10). */
  ExitNodeStatus?: { ID: string; Online: boolean; TailscaleIPs: string[] | null } | null;
}
export interface PeerStatusJson {
  ID: string;
  PublicKey: string;
  HostName: string;
  DNSName: string;
  TailscaleIPs: string[];
  Online: boolean;
  CurAddr: string;
  Relay: string;
  RxBytes: number;
  TxBytes: number;
  Expired?: boolean;
  AllowedIPs?: string[] | null;
  /** Approved subnet routes (no exit routes). */
  PrimaryRoutes?: string[] | null;
  /** This peer is the selected exit node / offers an (approved) exit node. */
  ExitNode?: boolean;
  ExitNodeOption?: boolean;
}

/** Options for {@link startNode}. */
export interface NodeOptions {
  readonly ns: string;
  readonly name: string;
  /** latticed `--port` (default: latticed's own, 41641). */
  readonly port?: number;
  /** latticed `--verbose N`. */
  readonly verbose?: number;
}

/** Starts `latticed --state DIR --socket PATH` in a namespace and waits for its LocalAPI. */
export async function startNode(lab: Lab, o: NodeOptions): Promise<LatticeNode> {
  const stateDir = join(lab.dir, `${o.name}-state`);
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const socket = join(lab.dir, `${o.name}.sock`);
  // --accept-dns is on by default: the node's resolv.conf is a file of the lab, never the host's.
  const argv = [...programArgv("daemon", "latticed"), "--state", stateDir, "--socket", socket, "--resolv-conf", join(lab.dir, `${o.name}-resolv.conf`)];
  if (o.port !== undefined) argv.push("--port", String(o.port));
  if (o.verbose !== undefined) argv.push("--verbose", String(o.verbose));
  const cli = programArgv("cli", "lattice");
  let runs = 0;
  let proc: LabProc | undefined;
  const lattice = (args: readonly string[], opt: { timeoutMs?: number } = {}): Promise<ExecResult> =>
    lab.run(o.ns, [...cli, "--socket", socket, ...args], { timeoutMs: opt.timeoutMs ?? 60_000 });
  const node: LatticeNode = {
    name: o.name,
    ns: o.ns,
    stateDir,
    socket,
    get proc() {
      if (proc === undefined) throw new Error(`${o.name}: latticed not started`);
      return proc;
    },
    lattice,
    async latticeOk(args, opt) {
      const r = await lattice(args, opt);
      if (r.code !== 0) throw new Error(`${o.name}: lattice ${args.join(" ")} failed (${r.code}):\n${r.stdout}${r.stderr}`);
      return r.stdout;
    },
    async status() {
      return JSON.parse(await node.latticeOk(["status", "--json"])) as StatusJson;
    },
    async start() {
      const p = lab.spawn(runs++ === 0 ? `latticed-${o.name}` : `latticed-${o.name}-${runs}`, o.ns, argv);
      proc = p;
      // Up once the LocalAPI answers `status --json` (any BackendState; `version` alone is
      // answered by the CLI without the daemon).
      await until(`${o.name}: latticed LocalAPI`, async () => {
        if (!p.running()) throw new GiveUp(`latticed exited: ${p.log().slice(-2000)}`);
        const r = await lattice(["status", "--json"], { timeoutMs: 5000 });
        return typeof (JSON.parse(r.stdout) as StatusJson).BackendState === "string";
      }, 30_000, 200);
    },
    async stop() {
      await proc?.stop();
    },
    async kill9() {
      await proc?.kill9();
    },
  };
  await node.start();
  return node;
}

/**
 * A raw LocalAPI request to a node (curl over its unix socket; the socket is a file of the lab
 * directory, reachable from any namespace): the HTTP status and the body text.
 */
export async function localApi(lab: Lab, node: LatticeNode, method: string, path: string, body?: unknown): Promise<{ status: number; body: string }> {
  const argv = ["curl", "-sS", "--max-time", "20", "--unix-socket", node.socket, "-X", method, "-w", "\n%{http_code}"];
  if (body !== undefined) argv.push("-H", "Content-Type: application/json", "--data-binary", JSON.stringify(body));
  const r = await lab.run(null, [...argv, `http://local-tailscaled.sock${path}`]);
  if (r.code !== 0) throw new Error(`curl ${method} ${path} on ${node.name} failed (${r.code}): ${r.stderr}`);
  const nl = r.stdout.lastIndexOf("\n");
  return { status: Number(r.stdout.slice(nl + 1)), body: r.stdout.slice(0, nl) };
}

/** Every peer of a status (empty when none). */
export function peersOf(s: StatusJson): PeerStatusJson[] {
  return Object.values(s.Peer ?? {});
}

/** The peer named `hostName` in a status, if present. */
export function peerNamed(s: StatusJson, hostName: string): PeerStatusJson | undefined {
  return peersOf(s).find((p) => p.HostName === hostName);
}

/** The first IPv4 tailnet address of a status entry. */
export function ipv4Of(p: { TailscaleIPs?: string[] | null }): string {
  const ip = (p.TailscaleIPs ?? []).find((a) => !a.includes(":"));
  if (ip === undefined) throw new Error(`no IPv4 tailnet address in ${JSON.stringify(p.TailscaleIPs)}`);
  return ip;
}

/**
 * `lattice up --login-server URL --auth-key KEY --hostname NAME [extra]`, then waits until
 * `status --json` says Running (and, with `peers`, until those host names are peers).
 */
export async function up(node: LatticeNode, control: Control, key: string, extra: readonly string[] = [], peers: readonly string[] = []): Promise<StatusJson> {
  await node.latticeOk(["up", "--login-server", control.url, "--auth-key", key, "--hostname", node.name, ...extra], { timeoutMs: 90_000 });
  return waitRunning(node, peers);
}

/** Polls `lattice status --json` until BackendState is Running and every named peer is present. */
export function waitRunning(node: LatticeNode, peers: readonly string[] = [], ms = 30_000): Promise<StatusJson> {
  return until(`${node.name}: Running with peers [${peers.join(", ")}]`, async () => {
    const s = await node.status();
    return s.BackendState === "Running" && peers.every((p) => peerNamed(s, p) !== undefined) ? s : false;
  }, ms, 250);
}
