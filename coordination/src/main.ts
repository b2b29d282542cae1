/**
 * `lattice-control`: the coordination server (`serve`), its admin commands (over the
 * admin unix socket), and the offline `policy compile`.
 */
import { closeSync, openSync, readFileSync, readSync } from "node:fs";
import { createRequire } from "node:module";
import { Command, CommanderError } from "commander";
import { adminRequest, DEFAULT_SOCKET } from "./admin-client.js";
import type { RawConfig } from "./config.js";

/** Thrown to end the program with a message and exit code. */
class ExitError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** The package version (`lattice-control --version`). */
const VERSION: string = (createRequire(import.meta.url)("../package.json") as { version: string }).version;

function socketOf(cmd: Command): string {
  const o = cmd.optsWithGlobals() as { socket?: string };
  return o.socket ?? process.env.LATTICE_CONTROL_SOCKET ?? DEFAULT_SOCKET;
}

/** What the server takes in one request body (http/json.ts MAX_BODY_BYTES): 1 MiB. */
const MAX_UPLOAD_BYTES = 1 << 20;

/**
 * A file (or `-`, standard input) as UTF-8. With `maxBytes`, at most that much is read
 * and a longer input is refused naming the file (a file meant for the server, which
 * refuses more anyway; /dev/zero is not read forever). Throws ExitError.
 */
function readText(path: string, what: string, maxBytes?: number): string {
  let fd: number | null = null;
  try {
    if (maxBytes === undefined) return path === "-" ? readFileSync(0, "utf8") : readFileSync(path, "utf8");
    fd = path === "-" ? 0 : openSync(path, "r");
    const buf = Buffer.alloc(maxBytes + 1);
    let n = 0;
    for (;;) {
      let got: number;
      try {
        got = readSync(fd, buf, n, buf.length - n, null);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "EAGAIN") continue;
        throw e;
      }
      if (got === 0) break;
      n += got;
      if (n > maxBytes) throw new ExitError(`${what} ${path} is larger than ${maxBytes} bytes (1 MiB), the most the server accepts`);
    }
    return buf.subarray(0, n).toString("utf8");
  } catch (e) {
    if (e instanceof ExitError) throw e;
    throw new ExitError(`cannot read ${what} ${path}: ${(e as Error).message}`);
  } finally {
    if (fd !== null && fd !== 0) closeSync(fd);
  }
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")).join("\n");
}

const EXIT_PAIR = ["0.0.0.0/0", "::/0"];

/**
 * A node's routes for display: each advertised route, "(pending)" while not approved; an
 * approved route the node no longer advertises "(not advertised)"; the exit pair as "exit".
 */
function routeStates(n: { advertisedRoutes: string[]; approvedRoutes: string[] }): { route: string; state: "approved" | "pending" | "not advertised" }[] {
  const adv = new Set(n.advertisedRoutes);
  const appr = new Set(n.approvedRoutes);
  const out: { route: string; state: "approved" | "pending" | "not advertised" }[] = [];
  const exitAdv = EXIT_PAIR.some((r) => adv.has(r));
  const exitAppr = EXIT_PAIR.some((r) => appr.has(r));
  for (const r of [...new Set([...adv, ...appr])].sort()) {
    if (EXIT_PAIR.includes(r)) continue;
    out.push({ route: r, state: !adv.has(r) ? "not advertised" : appr.has(r) ? "approved" : "pending" });
  }
  if (exitAdv || exitAppr) out.push({ route: "exit", state: !exitAdv ? "not advertised" : exitAppr ? "approved" : "pending" });
  return out;
}

function routesColumn(n: { advertisedRoutes: string[]; approvedRoutes: string[] }): string {
  const s = routeStates(n).map((x) => (x.state === "approved" ? x.route : `${x.route}(${x.state})`));
  return s.join(",") || "-";
}

function print(s: string): void {
  process.stdout.write(s.endsWith("\n") ? s : `${s}\n`);
}

/** Builds the command tree. */
export function buildProgram(): Command {
  const program = new Command("lattice-control")
    .description("Lattice coordination server and its admin commands")
    .option("--socket <path>", `admin socket (env LATTICE_CONTROL_SOCKET, default ${DEFAULT_SOCKET})`)
    .version(VERSION, "--version", "print the version")
    .showHelpAfterError()
    .exitOverride();

  program
    .command("serve")
    .description("run the coordination server")
    .option("--listen <addr:port>", "HTTP(S) listen address (default 0.0.0.0:8080)")
    .option("--server-url <url>", "public URL of this server (default http://127.0.0.1:<port>)")
    .option("--db <path|url>", "SQLite file or postgres:// URL (default ./lattice.db)")
    .option("--config <file>", "config file, JSON or YAML (env LATTICE_CONTROL_CONFIG)")
    .option("--db-password-file <file>", "file holding the PostgreSQL password (not visible in ps; or PGPASSWORD / PGPASSFILE)")
    .option("--tls-cert <file>", "TLS certificate (PEM)")
    .option("--tls-key <file>", "TLS private key (PEM)")
    .option("--tls-self-signed", "serve HTTPS with a generated self-signed certificate")
    .option("--tailnet-domain <domain>", "MagicDNS domain (default lattice.internal)")
    .option("--ephemeral-timeout <duration>", "delete ephemeral nodes offline this long (default 30m)")
    .option("--derp-map <file>", "tailcfg DERPMap JSON whose regions are added to the published DERP map")
    .option("--no-derp", "do not embed the DERP relay and STUN server (env LATTICE_CONTROL_NO_DERP)")
    .option("--stun-port <port>", "STUN UDP port of the embedded relay, -1 disables STUN (default 3478)")
    .option("--derp-region-id <id>", "region id of the embedded relay, 900-999 (default 900)")
    .option("--derp-region-code <code>", "region code of the embedded relay (default lattice)")
    .option("--oidc-issuer <url>", "OIDC issuer for web login (redirect URI <server-url>/oidc/callback)")
    .option("--oidc-client-id <id>", "OIDC client id")
    .option("--oidc-client-secret <secret>", "OIDC client secret (visible in the process list; prefer the file)")
    .option("--oidc-client-secret-file <file>", "file holding the OIDC client secret")
    .option("--oidc-allowed-domains <list>", "comma-separated e-mail domains allowed to log in via OIDC")
    .option("--oidc-allowed-users <list>", "comma-separated e-mail addresses allowed to log in via OIDC")
    .option("--oidc-only", "disable the local password login when OIDC is configured")
    .option("--log-level <level>", "fatal, error, warn, info (default), debug, trace or silent (env LATTICE_CONTROL_LOG_LEVEL)")
    .option("--allow-insecure-permissions", "start even when the SQLite database files are readable by group/others (they hold secrets)")
    .action(async (o, cmd: Command) => {
      const { readConfigFile, readEnv, resolveConfig } = await import("./config.js");
      const configPath = (o.config as string | undefined) ?? process.env.LATTICE_CONTROL_CONFIG;
      const file: RawConfig = configPath ? readConfigFile(configPath) : {};
      const flags: RawConfig = {
        listen: o.listen,
        serverUrl: o.serverUrl,
        db: o.db,
        dbPasswordFile: o.dbPasswordFile,
        socket: cmd.optsWithGlobals().socket,
        tlsCert: o.tlsCert,
        tlsKey: o.tlsKey,
        tlsSelfSigned: o.tlsSelfSigned,
        tailnetDomain: o.tailnetDomain,
        ephemeralTimeout: o.ephemeralTimeout,
        derpMap: o.derpMap,
        noDerp: o.derp === false ? true : undefined,
        stunPort: o.stunPort,
        derpRegionId: o.derpRegionId,
        derpRegionCode: o.derpRegionCode,
        oidcIssuer: o.oidcIssuer,
        oidcClientId: o.oidcClientId,
        oidcClientSecret: o.oidcClientSecret,
        oidcClientSecretFile: o.oidcClientSecretFile,
        oidcAllowedDomains: o.oidcAllowedDomains,
        oidcAllowedUsers: o.oidcAllowedUsers,
        oidcOnly: o.oidcOnly,
        allowInsecurePermissions: o.allowInsecurePermissions,
        logLevel: o.logLevel,
      };
      const cfg = resolveConfig(file, readEnv(process.env), flags);
      const { serve } = await import("./serve.js");
      let stopping = false;
      let server: Awaited<ReturnType<typeof serve>> | undefined;
      const stop = (code: number) => {
        if (stopping) return;
        stopping = true;
        (server ? server.close() : Promise.resolve()).then(
          () => process.exit(code),
          () => process.exit(1),
        );
        setTimeout(() => process.exit(1), 5000).unref();
      };
      try {
        server = await serve(cfg, console.log, {
          onFatal: (e) => {
            process.stderr.write(`error: ${e.message}; stopping (the database lock is gone)\n`);
            stop(1);
          },
        });
      } catch (e) {
        // serve() closed whatever it had opened; exit now so nothing half-started lingers.
        process.stderr.write(`error: ${(e as Error).message}\n`);
        process.exit(1);
      }
      if (stopping) return;
      process.on("SIGINT", () => stop(0));
      process.on("SIGTERM", () => stop(0));
    });

  program
    .command("configtest")
    .description("check the configuration (config file, environment) and the files it names, then exit")
    .option("--config <file>", "config file, JSON or YAML (env LATTICE_CONTROL_CONFIG)")
    .action(async (o) => {
      const { readConfigFile, readEnv, resolveConfig, readDerpMapFile } = await import("./config.js");
      const configPath = (o.config as string | undefined) ?? process.env.LATTICE_CONTROL_CONFIG;
      const cfg = resolveConfig(configPath ? readConfigFile(configPath) : {}, readEnv(process.env));
      if (cfg.derpMapFile) readDerpMapFile(cfg.derpMapFile);
      for (const [setting, file] of [["tlsCert", cfg.tls && "cert" in cfg.tls ? cfg.tls.cert : null], ["tlsKey", cfg.tls && "key" in cfg.tls ? cfg.tls.key : null], ["dbPasswordFile", cfg.dbPasswordFile], ["oidcClientSecretFile", null]] as const) {
        if (file) readText(file, setting);
      }
      const db = cfg.db.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@");
      print(`configuration OK${configPath ? ` (${configPath})` : ""}: listen ${cfg.listenHost}:${cfg.listenPort}, server URL ${cfg.serverUrl}, database ${db}, admin socket ${cfg.socket}`);
    });

  // users
  const users = program.command("users").description("manage local user accounts");
  users
    .command("create <name>")
    .description("create a user (password for the web login from --password or --password-stdin)")
    .option("--password <password>", "password (visible in the process list; prefer --password-stdin)")
    .option("--password-stdin", "read the password from standard input")
    .option("--email <email>", "login e-mail (what policies name); default <name>@")
    .option("--display-name <name>", "display name")
    .option("--role <role>", "owner, admin or member (default: owner for the first user, else member)")
    .action(async (name: string, o, cmd: Command) => {
      let password: string | undefined = o.password;
      if (o.passwordStdin) password = readFileSync(0, "utf8").split(/\r?\n/)[0];
      const r = await adminRequest(socketOf(cmd), "POST", "/users", { name, password, email: o.email, displayName: o.displayName, role: o.role });
      print(`created user ${r.user.name} (id ${r.user.id})`);
    });
  users
    .command("list")
    .option("--json", "print JSON")
    .action(async (o, cmd: Command) => {
      const r = await adminRequest(socketOf(cmd), "GET", "/users");
      if (o.json) return print(JSON.stringify(r.users, null, 2));
      print(table([["ID", "NAME", "EMAIL", "CREATED", "ROLE"], ...r.users.map((u: any) => [String(u.id), u.name, u.email ?? "-", u.createdAt, u.role])]));
    });
  users
    .command("set-role <name> <role>")
    .description("set a user's role: owner (transfers ownership; the old owner becomes admin), admin or member")
    .action(async (name: string, role: string, _o, cmd: Command) => {
      const r = await adminRequest(socketOf(cmd), "POST", `/users/${encodeURIComponent(name)}/role`, { role });
      print(`${r.user.name}: role ${r.user.role}`);
    });
  users
    .command("rename <name> <new-name>")
    .description("rename a user (without an e-mail their login name name@ changes with it)")
    .action(async (name: string, newName: string, _o, cmd: Command) => {
      const r = await adminRequest(socketOf(cmd), "POST", `/users/${encodeURIComponent(name)}/rename`, { name: newName });
      print(`renamed user ${name} to ${r.user.name}`);
    });
  users
    .command("set-email <name> <email>")
    .description('set a user\'s login e-mail ("" removes it; the login becomes name@)')
    .action(async (name: string, email: string, _o, cmd: Command) => {
      const r = await adminRequest(socketOf(cmd), "POST", `/users/${encodeURIComponent(name)}/email`, { email: email === "" ? null : email });
      print(`${r.user.name}: e-mail ${r.user.email ?? "(none)"}`);
    });
  users
    .command("passwd <name>")
    .description("set a user's web login password (first line of standard input, or --password); ends their web sessions")
    .option("--password <password>", "password (visible in the process list; prefer standard input)")
    .action(async (name: string, o, cmd: Command) => {
      const password: string = o.password ?? readFileSync(0, "utf8").split(/\r?\n/)[0] ?? "";
      await adminRequest(socketOf(cmd), "POST", `/users/${encodeURIComponent(name)}/password`, { password });
      print(`password of ${name} changed`);
    });
  users.command("delete <name>").action(async (name: string, _o, cmd: Command) => {
    await adminRequest(socketOf(cmd), "DELETE", `/users/${encodeURIComponent(name)}`);
    print(`deleted user ${name}`);
  });

  // keys
  const keys = program.command("keys").description("manage auth keys");
  keys
    .command("create")
    .description("create an auth key (printed once)")
    .option("--user <user>", "owner of the nodes registered with it")
    .option("--reusable", "may register several nodes")
    .option("--ephemeral", "nodes are deleted when they stay offline")
    .option("--preapproved", "nodes need no admin approval")
    .option("--tags <tags>", "comma-separated tags, e.g. tag:server,tag:prod")
    .option("--expiry <duration>", "lifetime, 24h to 90d (default 90d)")
    .action(async (o, cmd: Command) => {
      const tags = o.tags ? String(o.tags).split(",").map((t) => t.trim()).filter(Boolean) : undefined;
      const r = await adminRequest(socketOf(cmd), "POST", "/keys", {
        user: o.user,
        reusable: !!o.reusable,
        ephemeral: !!o.ephemeral,
        preapproved: !!o.preapproved,
        tags,
        expiry: o.expiry,
      });
      const k = r.authKey;
      const flags = [k.reusable && "reusable", k.ephemeral && "ephemeral", k.preapproved && "pre-approved"].filter(Boolean).join(", ") || "single-use";
      process.stderr.write(`created auth key ${k.prefix} (${flags}; ${k.tags.length ? `tags ${k.tags.join(",")}` : `user ${k.user}`}; expires ${withRel(k.expiresAt, Date.now())})\n`);
      print(r.key);
    });
  keys
    .command("list")
    .option("--json", "print JSON")
    .action(async (o, cmd: Command) => {
      const r = await adminRequest(socketOf(cmd), "GET", "/keys");
      if (o.json) return print(JSON.stringify(r.keys, null, 2));
      const flags = (k: any) => [k.reusable && "reusable", k.ephemeral && "ephemeral", k.preapproved && "preapproved", k.revoked && "revoked"].filter(Boolean).join(",") || "-";
      print(table([["ID", "PREFIX", "USER", "TAGS", "FLAGS", "USED", "EXPIRES", "CREATOR"], ...r.keys.map((k: any) => [String(k.id), k.prefix, k.user ?? "-", k.tags.join(",") || "-", flags(k), String(k.used), withRel(k.expiresAt, Date.now()), k.createdBy ?? "-"])]));
    });
  keys.command("revoke <id>").description("revoke by id or prefix").action(async (id: string, _o, cmd: Command) => {
    const r = await adminRequest(socketOf(cmd), "POST", `/keys/${encodeURIComponent(id)}/revoke`, {});
    print(r.alreadyRevoked ? `key ${r.key.prefix} was already revoked` : `revoked key ${id}`);
  });
  keys.command("delete <id>").description("delete a key by id or prefix (nodes registered with it stay)").action(async (id: string, _o, cmd: Command) => {
    const r = await adminRequest(socketOf(cmd), "POST", `/keys/${encodeURIComponent(id)}/delete`, {});
    print(`deleted key ${r.deleted.prefix}`);
  });

  // nodes
  const nodes = program.command("nodes").description("manage nodes (by id, name, FQDN or node key)");
  nodes
    .command("list")
    .option("--json", "print JSON")
    .option("--user <user>", "only nodes of this user")
    .option("--tag <tag>", "only nodes with this tag")
    .option("--online", "only online nodes")
    .action(async (o, cmd: Command) => {
      const r = await adminRequest(socketOf(cmd), "GET", "/nodes");
      r.nodes = r.nodes.filter((n: any) => (!o.user || n.user === o.user) && (!o.tag || n.tags.includes(o.tag)) && (!o.online || n.online));
      if (o.json) return print(JSON.stringify(r.nodes, null, 2));
      const status = (n: any) => (n.expired ? "expired" : !n.approved ? "needs-approval" : n.policyError ? "cut-off" : n.online ? "online" : "offline");
      print(
        table([
          ["ID", "NAME", "IPV4", "IPV6", "OWNER", "STATUS", "EXPIRY", "ROUTES"],
          ...r.nodes.map((n: any) => [
            String(n.id),
            n.name,
            n.ipv4,
            n.ipv6,
            n.tags.length ? n.tags.join(",") : n.user ?? "-",
            status(n),
            n.expiryDisabled ? "disabled" : n.keyExpiry ? withRel(n.keyExpiry, Date.now()) : "never",
            routesColumn(n),
          ]),
        ]),
      );
      const cut = r.nodes.find((n: any) => n.policyError);
      if (cut) process.stderr.write(`warning: nodes marked cut-off get no packet filter and no peers: ${cut.policyError}\n`);
    });
  for (const [name, desc] of [
    ["approve", "approve a node waiting for device approval"],
    ["expire", "expire a node's key now"],
    ["disable-expiry", "turn off key expiry for a node"],
  ] as const) {
    nodes.command(`${name} <node>`).description(desc).action(async (ref: string, _o, cmd: Command) => {
      const r = await adminRequest(socketOf(cmd), "POST", `/nodes/${encodeURIComponent(ref)}/${name}`, {});
      print(r.alreadyApproved ? `${r.node.name} (id ${r.node.id}) was already approved` : `${name}: ${r.node.name} (id ${r.node.id})`);
    });
  }
  nodes
    .command("show <node>")
    .description("one node's details (by id, name, FQDN or node key)")
    .option("--json", "print JSON")
    .action(async (ref: string, o, cmd: Command) => {
      const n = (await adminRequest(socketOf(cmd), "GET", `/nodes/${encodeURIComponent(ref)}`)).node;
      if (o.json) return print(JSON.stringify(n, null, 2));
      const now = Date.now();
      const status = n.expired ? "expired" : !n.approved ? "needs-approval" : n.policyError ? "cut-off" : n.online ? "online" : "offline";
      print(
        table([
          ["id", String(n.id)],
          ["name", n.name],
          ["hostname", n.hostname],
          ["owner", n.tags.length ? n.tags.join(",") : (n.user ?? "-")],
          ["ipv4", n.ipv4],
          ["ipv6", n.ipv6],
          ["status", status],
          ["last seen", n.lastSeen ? withRel(n.lastSeen, now) : "never"],
          ["key expiry", n.expiryDisabled ? "disabled" : n.keyExpiry ? withRel(n.keyExpiry, now) : "never"],
          ["ephemeral", n.ephemeral ? "yes" : "no"],
          ["routes", routesColumn(n)],
          ["machine key", n.machineKey],
          ["node key", n.nodeKey],
          ["created", withRel(n.createdAt, now)],
        ]),
      );
    });
  nodes.command("delete <node>").action(async (ref: string, _o, cmd: Command) => {
    await adminRequest(socketOf(cmd), "DELETE", `/nodes/${encodeURIComponent(ref)}`);
    print(`deleted node ${ref}`);
  });
  nodes
    .command("tag <node> <tags>")
    .description("set a node's tags (comma-separated); the node becomes tagged")
    .action(async (ref: string, tags: string, _o, cmd: Command) => {
      const list = tags.split(",").map((t) => t.trim()).filter(Boolean);
      const r = await adminRequest(socketOf(cmd), "POST", `/nodes/${encodeURIComponent(ref)}/tags`, { tags: list });
      print(`${r.node.name}: tags ${r.node.tags.join(",") || "(none)"}`);
    });
  nodes
    .command("approve-routes <node> [routes]")
    .description(
      "approve routes the node advertises, added to those already approved (comma-separated prefixes; " +
        "0.0.0.0/0 or ::/0 approves the exit node pair); --remove takes them away, --replace sets exactly these (none: clears)",
    )
    .option("--remove", "remove these routes from the approved ones")
    .option("--replace", "approve exactly these routes, dropping the others (with no routes: clear all)")
    .action(async (ref: string, routes: string | undefined, o, cmd: Command) => {
      const list = (routes ?? "").split(",").map((r) => r.trim()).filter(Boolean);
      if (o.remove && o.replace) throw new ExitError("approve-routes: --remove and --replace exclude each other");
      if (list.length === 0 && !o.replace) throw new ExitError("approve-routes: no routes given (to clear all approved routes: --replace with no routes)");
      const mode = o.replace ? "replace" : o.remove ? "remove" : "add";
      const r = await adminRequest(socketOf(cmd), "POST", `/nodes/${encodeURIComponent(ref)}/routes`, { routes: list, mode });
      print(`${r.node.name}: approved routes ${r.node.approvedRoutes.join(",") || "(none)"}`);
    });
  nodes
    .command("routes <node>")
    .description("the node's advertised and approved routes; --approve adds approvals first (as approve-routes)")
    .option("--approve <routes>", "approve these advertised routes (comma-separated prefixes; 0.0.0.0/0 or ::/0 approves the exit node pair), added to those already approved")
    .option("--json", "print JSON")
    .action(async (ref: string, o, cmd: Command) => {
      let n;
      if (o.approve !== undefined) {
        const list = String(o.approve).split(",").map((r) => r.trim()).filter(Boolean);
        if (list.length === 0) throw new ExitError(`invalid value ${JSON.stringify(o.approve)} for --approve: no routes given (e.g. --approve 10.0.0.0/24,0.0.0.0/0)`);
        n = (await adminRequest(socketOf(cmd), "POST", `/nodes/${encodeURIComponent(ref)}/routes`, { routes: list, mode: "add" })).node;
      } else n = (await adminRequest(socketOf(cmd), "GET", `/nodes/${encodeURIComponent(ref)}`)).node;
      if (o.json) return print(JSON.stringify({ name: n.name, advertisedRoutes: n.advertisedRoutes, approvedRoutes: n.approvedRoutes }, null, 2));
      const rows = routeStates(n).map((x) => [x.route === "exit" ? "exit node (0.0.0.0/0, ::/0)" : x.route, x.state]);
      print(rows.length === 0 ? `${n.name}: no routes advertised or approved` : table([["ROUTE", "STATE"], ...rows]));
    });
  nodes.command("rename <node> <name>").action(async (ref: string, name: string, _o, cmd: Command) => {
    const r = await adminRequest(socketOf(cmd), "POST", `/nodes/${encodeURIComponent(ref)}/rename`, { name });
    print(`renamed to ${r.node.name}`);
  });

  // policy
  const policy = program.command("policy").description("the tailnet policy (huJSON)");
  policy.command("get").action(async (_o, cmd: Command) => {
    const r = await adminRequest(socketOf(cmd), "GET", "/policy");
    print(r.policy);
  });
  policy.command("set <file>").action(async (file: string, _o, cmd: Command) => {
    const r = await adminRequest(socketOf(cmd), "PUT", "/policy", { policy: readText(file, "policy file") });
    print(`policy updated (version ${r.version})`);
  });
  policy.command("check <file>").action(async (file: string, _o, cmd: Command) => {
    await adminRequest(socketOf(cmd), "POST", "/policy/check", { policy: readText(file, "policy file") });
    print("policy is valid");
  });
  policy
    .command("compile")
    .description("compile a policy for a topology, offline (no server)")
    .requiredOption("--policy <file>", "policy file (huJSON)")
    .requiredOption("--topology <file>", "topology file (JSON: users and nodes)")
    .option("--node <name>", "only this node")
    .action(async (o) => {
      const { compileFiles } = await import("@lattice/policy");
      const out = compileFiles(readText(o.policy, "policy file"), readText(o.topology, "topology file"), o.node);
      print(out);
    });

  // DNS settings (coordination/README.md, "DNS")
  const dns = program.command("dns").description("the tailnet's DNS settings: MagicDNS, tailnet domain, nameservers, split DNS, search paths");
  dns
    .command("get")
    .description("print the DNS settings (JSON, the format `dns set` reads)")
    .option("--json", "print JSON (the default; kept for symmetry with the other commands)")
    .action(async (_o, cmd: Command) => {
      print(JSON.stringify(await adminRequest(socketOf(cmd), "GET", "/dns"), null, 2));
    });
  dns
    .command("set <file>")
    .description("replace the DNS settings with a JSON/huJSON file (- = standard input); nodes get them within a second")
    .action(async (file: string, _o, cmd: Command) => {
      const r = await adminRequest(socketOf(cmd), "PUT", "/dns", readText(file, "DNS settings file", MAX_UPLOAD_BYTES), "application/hujson");
      print(dnsSummary(r));
    });

  // API keys for the REST API
  const apikeys = program.command("apikeys").description("manage REST API keys");
  apikeys
    .command("create")
    .option("--description <text>", "what the key is for")
    .option("--expiry <duration>", "lifetime, 1d to 365d (default 90d)")
    .option("--user <user>", "the key acts for this owner/admin and stops working when they lose the role (default: an admin key)")
    .action(async (o, cmd: Command) => {
      const r = await adminRequest(socketOf(cmd), "POST", "/apikeys", { description: o.description, expiry: o.expiry, user: o.user });
      print(r.key);
    });
  apikeys.command("list").option("--json", "print JSON").action(async (o, cmd: Command) => {
    const r = await adminRequest(socketOf(cmd), "GET", "/apikeys");
    if (o.json) return print(JSON.stringify(r.apiKeys, null, 2));
    print(table([["ID", "PREFIX", "DESCRIPTION", "EXPIRES", "REVOKED", "USER"], ...r.apiKeys.map((k: any) => [String(k.id), k.prefix, k.description ?? "-", k.expiresAt, k.revoked ? "yes" : "no", k.user ?? "-"])]));
  });
  apikeys.command("revoke <id>").action(async (id: string, _o, cmd: Command) => {
    await adminRequest(socketOf(cmd), "DELETE", `/apikeys/${encodeURIComponent(id)}`);
    print(`revoked API key ${id}`);
  });

  // TLS
  const tlsCmd = program.command("tls").description("the server's TLS certificate");
  tlsCmd
    .command("fingerprint")
    .description("SHA-256 fingerprint of the certificate the running server presents")
    .action(async (_o, cmd: Command) => {
      const r = await adminRequest(socketOf(cmd), "GET", "/tls");
      if (!r.tls) throw new ExitError("the server does not serve TLS (no --tls-cert/--tls-key or --tls-self-signed)");
      print(r.tls.fingerprint);
    });
  tlsCmd
    .command("rotate")
    .description("forget the self-signed certificate: the next start makes a new one (nodes that pinned the old one must re-pin)")
    .action(async (_o, cmd: Command) => {
      const r = await adminRequest(socketOf(cmd), "POST", "/tls/rotate");
      print(r.rotated ? "the self-signed certificate will be replaced at the next start" : "no self-signed certificate is stored");
    });

  // audit log
  program
    .command("audit")
    .description("the audit log of administrative changes, oldest first (console, REST API, CLI)")
    .option("--since <when>", "only entries since a date (2026-01-31, 2026-01-31T12:00:00Z) or a duration back (24h, 7d)")
    .option("--json", "print JSON lines, one entry per line (for export)")
    .action(async (o, cmd: Command) => {
      const entries: any[] = [];
      let before: number | null = null;
      for (;;) {
        const q = new URLSearchParams({ limit: "500" });
        if (o.since) q.set("since", o.since);
        if (before != null) q.set("before", String(before));
        const r = await adminRequest(socketOf(cmd), "GET", `/audit?${q}`);
        entries.push(...r.entries);
        if (r.next == null) break;
        before = r.next;
      }
      entries.reverse();
      if (o.json) {
        process.stdout.write(entries.map((e) => `${JSON.stringify(e)}\n`).join(""));
        return;
      }
      if (entries.length === 0) return print("no audit entries");
      const now = Date.now();
      print(table([["WHEN", "WHO", "ACTION", "TARGET", "FROM"], ...entries.map((e) => [`${e.at} (${relTime(Date.parse(e.at), now)})`, e.actor, e.action, e.target || "-", e.source])]));
    });
  return program;
}

/** The one line `dns set` prints, e.g. `DNS settings updated: domain corp.lattice, MagicDNS on, 2 nameservers (override local DNS), 1 split DNS domain, 0 search paths`. */
function dnsSummary(d: any): string {
  const n = (k: number, what: string) => `${k} ${what}${k === 1 ? "" : "s"}`;
  const ns = d.nameservers.length === 0 ? n(0, "nameserver") : `${n(d.nameservers.length, "nameserver")} (${d.preferences.overrideLocalDNS ? "override local DNS" : "fallback only: overrideLocalDNS is off"})`;
  return `DNS settings updated: domain ${d.tailnetDomain}, MagicDNS ${d.preferences.magicDNS ? "on" : "off"}, ${ns}, ${n(Object.keys(d.splitDNS).length, "split DNS domain")}, ${n(d.searchPaths.length, "search path")}`;
}

/** An ISO timestamp with its relative time: `2026-01-31T12:00:00.000Z (in 6 d)`. */
function withRel(iso: string, now: number): string {
  return `${iso} (${relTime(Date.parse(iso), now)})`;
}

/** "in 6 d", "3 h ago", "just now": `t` relative to `now` (ms). */
export function relTime(t: number, now: number): string {
  const d = t - now;
  const a = Math.abs(d);
  const [size, unit] = a >= 86_400_000 ? [86_400_000, "d"] : a >= 3_600_000 ? [3_600_000, "h"] : a >= 60_000 ? [60_000, "min"] : [0, ""];
  if (!size) return "just now";
  const s = `${Math.floor(a / size)} ${unit}`;
  return d >= 0 ? `in ${s}` : `${s} ago`;
}

/** Runs the CLI with argv; errors print `error: ...` on stderr and exit 1. */
export async function run(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      process.exitCode = e.exitCode;
      return;
    }
    process.stderr.write(`error: ${(e as Error).message}\n`);
    process.exitCode = e instanceof ExitError ? e.exitCode : 1;
  }
}

await run(process.argv);
