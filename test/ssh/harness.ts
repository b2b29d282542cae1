// Test harness for the embedded SSH server: a fake SshBackend (127.0.0.1 is the peer node
// "laptop" of alice@example.com; this node is "server1"), a server on 127.0.0.1:<random>,
// and helpers that drive it with the real OpenSSH client.
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { createRequire } from "node:module";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Client as Ssh2Client } from "ssh2";
import type { Node, SSHAction, SSHPolicy, UserProfile } from "@lattice/types";
import { loadHostKeys, SshServer, type SshBackend } from "../../daemon/src/ssh/index.js";

export const SRC_NODE: Node = {
  ID: 11,
  StableID: "nLAPTOP",
  Name: "laptop.tailnet.example.",
  User: 1,
  Key: "nodekey:00",
  Addresses: ["100.64.0.1/32"],
  AllowedIPs: ["100.64.0.1/32"],
};
export const SELF_NODE: Node = {
  ID: 22,
  StableID: "nSERVER1",
  Name: "server1.tailnet.example.",
  User: 1,
  Key: "nodekey:01",
  Addresses: ["100.64.0.2/32"],
  AllowedIPs: ["100.64.0.2/32"],
};
export const ALICE: UserProfile = { ID: 1, LoginName: "alice@example.com", DisplayName: "Alice" };

/** accept-all rule as the policy compiler emits it (root and non-root, all forwarding). */
export function acceptPolicy(users: Record<string, string> = { root: "root", "*": "=" }, action: Partial<SSHAction> = {}): SSHPolicy {
  return {
    rules: [
      {
        principals: [{ userLogin: ALICE.LoginName }],
        sshUsers: users,
        action: { accept: true, allowAgentForwarding: true, allowLocalPortForwarding: true, allowRemotePortForwarding: true, ...action },
      },
    ],
  };
}

/** A mutable fake backend. */
export class FakeBackend implements SshBackend {
  policy: SSHPolicy | undefined;
  srcNode: Node = SRC_NODE;
  srcUser: UserProfile | null = ALICE;
  checkHandler: (url: string, signal: AbortSignal) => Promise<SSHAction> = () => Promise.reject(new Error("no check server"));
  checkUrls: string[] = [];
  private readonly subs = new Set<() => void>();
  constructor(policy?: SSHPolicy) {
    this.policy = policy;
  }
  whois(srcIp: string): { node: Node; user: UserProfile | null } | undefined {
    return srcIp === "127.0.0.1" ? { node: this.srcNode, user: this.srcUser } : undefined;
  }
  self(): { node: Node } {
    return { node: SELF_NODE };
  }
  sshPolicy(): SSHPolicy | undefined {
    return this.policy;
  }
  onPolicyChange(cb: () => void): () => void {
    this.subs.add(cb);
    return () => this.subs.delete(cb);
  }
  fetchCheck(url: string, signal: AbortSignal): Promise<SSHAction> {
    this.checkUrls.push(url);
    return this.checkHandler(url, signal);
  }
  setPolicy(p: SSHPolicy | undefined): void {
    this.policy = p;
    for (const cb of this.subs) cb();
  }
}

export interface Started {
  server: SshServer;
  backend: FakeBackend;
  port: number;
  logs: Record<string, unknown>[];
  stateDir: string;
  close(): Promise<void>;
}

/** Starts a server with a fake backend; host keys generated in a temp state dir. */
export async function startServer(policy: SSHPolicy | undefined, opts: Partial<ConstructorParameters<typeof SshServer>[0]> = {}): Promise<Started> {
  const stateDir = mkdtempSync(join(tmpdir(), "lattice-sshd-test-"));
  const emptySys = mkdtempSync(join(tmpdir(), "lattice-sshd-nosys-"));
  const backend = new FakeBackend(policy);
  const logs: Record<string, unknown>[] = [];
  const server = new SshServer({
    backend,
    hostKeys: loadHostKeys({ stateDir, systemDir: emptySys }),
    log: (r) => logs.push(r),
    ...opts,
  });
  const { port } = await server.listen("127.0.0.1", 0);
  return {
    server,
    backend,
    port,
    logs,
    stateDir,
    async close() {
      await server.close();
      rmSync(stateDir, { recursive: true, force: true });
      rmSync(emptySys, { recursive: true, force: true });
    },
  };
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a program to completion (killed after timeoutMs). */
export function run(cmd: string, args: string[], opts: SpawnOptions & { input?: string | Buffer; timeoutMs?: number } = {}): Promise<RunResult> {
  return start(cmd, args, opts).done;
}

/** Starts a program; `done` resolves at its end, `proc` lets the test signal it (by pid). */
export function start(
  cmd: string,
  args: string[],
  opts: SpawnOptions & { input?: string | Buffer; timeoutMs?: number; keepStdin?: boolean } = {},
): { proc: ChildProcess; done: Promise<RunResult> } {
  const p = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"], ...opts });
  p.stdin!.on("error", () => undefined);
  const done = new Promise<RunResult>((resolve, reject) => {
    let stdout = "";
    let stderr = "";
    p.stdout!.on("data", (d) => (stdout += d));
    p.stderr!.on("data", (d) => (stderr += d));
    const t = setTimeout(() => p.kill("SIGKILL"), opts.timeoutMs ?? 20_000);
    p.on("error", reject);
    p.on("close", (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal, stdout, stderr });
    });
    if (opts.keepStdin) {
      if (opts.input !== undefined) p.stdin!.write(opts.input);
    } else p.stdin!.end(opts.input ?? "");
  });
  return { proc: p, done };
}

/** OpenSSH client options for the test server. */
export function sshOpts(port: number): string[] {
  return [
    "-F", "/dev/null",
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=INFO",
    "-o", "BatchMode=yes",
    "-o", "ConnectTimeout=10",
    "-p", String(port),
  ];
}

/** `ssh -p PORT user@127.0.0.1 ...args`. */
export function ssh(port: number, user: string, args: string[], opts: SpawnOptions & { input?: string; timeoutMs?: number; sshArgs?: string[] } = {}): Promise<RunResult> {
  return run("ssh", [...sshOpts(port), ...(opts.sshArgs ?? []), `${user}@127.0.0.1`, ...args], opts);
}

/** ssh2's Client (ssh2 is a dependency of the daemon package, resolved from there). */
export function ssh2Client(): Ssh2Client {
  const req = createRequire(new URL("../../daemon/package.json", import.meta.url));
  const mod = req("ssh2") as { Client: new () => Ssh2Client };
  return new mod.Client();
}
