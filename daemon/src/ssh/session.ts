/**
 * One SSH "session" channel (RFC 4254 §6): pty-req, env, auth-agent-req, window-change,
 * signal, then shell / exec / subsystem, run as the mapped local user.
 *
 * How a process becomes the user (the choice, written down): the daemon runs as root, and
 * Node's spawn can set uid/gid but not supplementary groups. Every session process is
 * therefore started as `setpriv --reuid=U --regid=G --init-groups -- <program>` (util-linux),
 * which calls initgroups(3) → setgid → setuid before exec — the same sequence as `login`,
 * so `id` over SSH equals `id USER` on the host. setpriv keeps our environment (we build
 * it from scratch: HOME USER LOGNAME SHELL PATH MAIL SSH_CONNECTION SSH_CLIENT, SSH_TTY and
 * TERM with a pty, LANG/LC_* and the rule's AcceptEnv from the client, SSH_AUTH_SOCK), and
 * the process starts in the user's home. Shells are `<shell> -l` (login shell, as OpenSSH's
 * argv0 "-bash"), commands `<shell> -c <command>` (as OpenSSH), the sftp subsystem is the
 * system's sftp-server. When the daemon does not run as root, only sessions as its own user
 * are possible and processes are spawned directly. Each session process leads its own
 * process group; signals, hang-up on channel close and revocation go to the whole group.
 *
 * PTY sessions get utmp/wtmp login records (utmp.ts), as sshd writes them.
 *
 * Exit codes follow OpenSSH: the program's status or signal; 255 when the session could not
 * be started (SSH-layer failure); 127 comes from the shell for an unknown command.
 */
import { spawn as spawnChild, type ChildProcess } from "node:child_process";
import { constants as osConstants } from "node:os";
import nodePty, { type IPty } from "node-pty";
import type { PseudoTtyInfo, ServerChannel, Session } from "ssh2";
import { envAccepted } from "./policy.js";
import type { LocalUser } from "./users.js";
import { recordLogin, type UtmpPaths } from "./utmp.js";

/** What a session needs from its connection. */
export interface SessionContext {
  user: LocalUser;
  acceptEnv: readonly string[];
  /** "srcIp srcPort dstIp dstPort". */
  sshConnection: string;
  /** "srcIp srcPort dstPort". */
  sshClient: string;
  sftpServerPath: string;
  setprivPath: string;
  /** utmp/wtmp for PTY sessions (null: none). */
  loginRecords: UtmpPaths | null;
  /** The remote host for login records (the peer's address). */
  remoteHost: string;
  /** Starts (once per connection) the forwarded-agent socket; undefined when not allowed. */
  agentSocket(): Promise<string | undefined>;
  /** Registers a live session for revocation; returns the unregister function. */
  track(s: LiveSession): () => void;
  /** Structured log line. */
  log(event: string, fields: Record<string, unknown>): void;
}

/** A running session as the connection sees it (for revocation and limits). */
export interface LiveSession {
  /** Tells the user why, hangs the process group up and closes the channel. */
  terminate(message: string): void;
}

const MAX_ENV = 64;
const MAX_ENV_BYTES = 16 * 1024;
const SIGNALS = new Set(["ABRT", "ALRM", "FPE", "HUP", "ILL", "INT", "KILL", "PIPE", "QUIT", "SEGV", "TERM", "USR1", "USR2"]);
const SIGNAL_NAMES = new Map<number, string>(
  Object.entries(osConstants.signals).map(([name, num]) => [num, name.replace(/^SIG/, "")]),
);

function clampDim(n: number, dflt: number): number {
  return Number.isInteger(n) && n > 0 && n <= 10_000 ? n : dflt;
}

/** The argv that runs `inner` as `user` (see the module comment). */
export function asUserArgv(user: LocalUser, inner: string[], setprivPath: string): { file: string; args: string[] } {
  const me = process.getuid?.() ?? -1;
  if (me === 0) {
    return {
      file: setprivPath,
      args: [`--reuid=${user.uid}`, `--regid=${user.gid}`, "--init-groups", "--", ...inner],
    };
  }
  if (me === user.uid) return { file: inner[0]!, args: inner.slice(1) };
  throw new Error(`cannot run a session as ${user.name}: the daemon is not root`);
}

function defaultPath(user: LocalUser): string {
  return user.uid === 0
    ? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    : "/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games";
}

/** Handles one accepted session channel. */
export function handleSession(session: Session, ctx: SessionContext): void {
  const clientEnv: Record<string, string> = {};
  let envBytes = 0;
  let pty: PseudoTtyInfo | null = null;
  let agent = false;
  let started = false;
  let winch: ((cols: number, rows: number) => void) | null = null;
  let signal: ((name: string) => void) | null = null;

  session.on("pty", (accept, reject, info) => {
    if (started || pty) return reject?.();
    pty = info;
    accept?.();
  });
  session.on("env", (accept, reject, info) => {
    const key = String(info.key);
    const val = String(info.val);
    const ok =
      !started &&
      Object.keys(clientEnv).length < MAX_ENV &&
      (envBytes += key.length + val.length) <= MAX_ENV_BYTES &&
      /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) &&
      (key === "LANG" || key.startsWith("LC_") || key === "TERM" || envAccepted(key, ctx.acceptEnv));
    if (ok) clientEnv[key] = val;
    // Tailscale and OpenSSH both ignore refused variables silently (the client only logs).
    (ok ? accept : reject)?.();
  });
  session.on("auth-agent", (accept, reject) => {
    if (started) return reject?.();
    agent = true;
    accept?.();
  });
  session.on("window-change", (accept, _reject, info) => {
    winch?.(clampDim(info.cols, 80), clampDim(info.rows, 24));
    accept?.();
  });
  session.on("signal", (accept, reject, info) => {
    const name = String(info.name).replace(/^SIG/, "");
    if (!SIGNALS.has(name) || !signal) return reject?.();
    signal(name);
    accept?.();
  });
  session.on("x11", (_a, reject) => reject?.());

  const start = async (kind: "shell" | "exec" | "subsystem", ch: ServerChannel, command?: string): Promise<void> => {
    started = true;
    const user = ctx.user;
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(clientEnv)) env[k] = v;
    Object.assign(env, {
      HOME: user.home,
      USER: user.name,
      LOGNAME: user.name,
      SHELL: user.shell,
      PATH: defaultPath(user),
      MAIL: `/var/mail/${user.name}`,
      SSH_CONNECTION: ctx.sshConnection,
      SSH_CLIENT: ctx.sshClient,
    });
    if (agent) {
      const sock = await ctx.agentSocket().catch(() => undefined);
      if (sock) env.SSH_AUTH_SOCK = sock;
    }
    let inner =
      kind === "subsystem" ? [ctx.sftpServerPath] : kind === "exec" ? [user.shell, "-c", command ?? ""] : [user.shell, "-l"];
    // The pty's name is known only once it exists: a tiny sh prologue exports SSH_TTY.
    if (pty && kind !== "subsystem") inner = ["/bin/sh", "-c", 'SSH_TTY=$(tty) && export SSH_TTY; exec "$@"', "sh", ...inner];
    let argv: { file: string; args: string[] };
    try {
      argv = asUserArgv(user, inner, ctx.setprivPath);
    } catch (e) {
      ch.stderr.write(`lattice: ${(e as Error).message}\r\n`);
      ch.exit(255);
      ch.end();
      return;
    }
    const t0 = Date.now();
    const what = kind === "exec" ? { command } : kind === "subsystem" ? { subsystem: "sftp" } : {};
    ctx.log("ssh session start", { type: kind, pty: pty !== null, ...what });
    let ended = false;
    let logout: (() => void) | null = null;
    const finish = (code: number | null, sig: string | null): void => {
      if (ended) return;
      ended = true;
      untrack();
      logout?.();
      ctx.log("ssh session end", { type: kind, exitCode: code, exitSignal: sig, durationMs: Date.now() - t0 });
      try {
        if (sig) ch.exit(sig, false, "");
        else ch.exit(code ?? 255);
      } catch {
        // A signal outside RFC 4254's list (ssh2 refuses e.g. WINCH, SYS): report it as
        // sshd's 128+n would be seen by a shell; or the channel is already gone.
        try {
          ch.exit(sig ? 128 + (osConstants.signals[`SIG${sig}` as keyof typeof osConstants.signals] ?? 127) : 255);
        } catch {
          // gone
        }
      }
      try {
        ch.end();
      } catch {
        // channel already gone (client closed it)
      }
    };
    let pid: number | undefined;
    const killGroup = (s: NodeJS.Signals): void => {
      if (pid === undefined) return;
      try {
        process.kill(-pid, s);
      } catch {
        try {
          process.kill(pid, s);
        } catch {
          // already gone
        }
      }
    };
    const untrack = ctx.track({
      terminate(message: string) {
        try {
          (pty ? ch : ch.stderr).write(`\r\n${message}\r\n`);
        } catch {
          // channel gone
        }
        killGroup("SIGHUP");
        setTimeout(() => killGroup("SIGKILL"), 2000).unref();
        finish(null, "HUP");
      },
    });
    signal = (name) => killGroup(`SIG${name}` as NodeJS.Signals);
    ch.on("close", () => {
      if (!ended) killGroup("SIGHUP");
    });
    ch.on("error", () => undefined);

    if (pty && kind !== "subsystem") {
      env.TERM = pty.term || "xterm";
      let term: IPty;
      try {
        term = nodePty.spawn(argv.file, argv.args, {
          name: env.TERM,
          cols: clampDim(pty.cols, 80),
          rows: clampDim(pty.rows, 24),
          cwd: user.home,
          env,
          encoding: null,
        });
      } catch (e) {
        ch.stderr.write(`lattice: cannot start session: ${(e as Error).message}\r\n`);
        finish(255, null);
        return;
      }
      pid = term.pid;
      const ptsName = (term as unknown as { ptsName?: string }).ptsName;
      if (ctx.loginRecords && ptsName) {
        logout = recordLogin(ctx.loginRecords, { tty: ptsName, pid: term.pid, user: user.name, host: ctx.remoteHost });
      }
      winch = (cols, rows) => {
        try {
          term.resize(cols, rows);
        } catch {
          // exited
        }
      };
      term.onData((d: string | Buffer) => {
        if (!ch.write(d)) {
          term.pause();
          ch.once("drain", () => term.resume());
        }
      });
      ch.on("data", (d: Buffer) => {
        try {
          term.write(d);
        } catch {
          // the pty is gone; finish() follows from onExit
        }
      });
      term.onExit(({ exitCode, signal: s }) => finish(s ? null : exitCode, s ? (SIGNAL_NAMES.get(s) ?? "KILL") : null));
      return;
    }

    let child: ChildProcess;
    try {
      child = spawnChild(argv.file, argv.args, { cwd: user.home, env, stdio: "pipe", detached: true });
    } catch (e) {
      ch.stderr.write(`lattice: cannot start session: ${(e as Error).message}\r\n`);
      finish(255, null);
      return;
    }
    pid = child.pid;
    child.on("error", (e) => {
      try {
        ch.stderr.write(`lattice: cannot start session: ${e.message}\r\n`);
      } catch {
        // gone
      }
      finish(255, null);
    });
    child.stdin!.on("error", () => undefined);
    ch.pipe(child.stdin!);
    child.stdout!.pipe(ch, { end: false });
    child.stderr!.pipe(ch.stderr, { end: false });
    child.on("close", (code, sig) => finish(code, sig ? sig.replace(/^SIG/, "") : null));
  };

  // Never let a failure escape as an unhandled rejection (it would end the daemon).
  const run = (kind: "shell" | "exec" | "subsystem", ch: ServerChannel | undefined, command?: string): void => {
    if (!ch) return;
    start(kind, ch, command).catch((e: unknown) => {
      ctx.log("ssh session error", { type: kind, error: String(e) });
      try {
        ch.exit(255);
        ch.end();
      } catch {
        // gone
      }
    });
  };
  session.on("shell", (accept, reject) => {
    if (started) return reject?.();
    run("shell", accept());
  });
  session.on("exec", (accept, reject, info) => {
    if (started) return reject?.();
    const cmd = String(info.command);
    run(cmd === "" ? "shell" : "exec", accept(), cmd);
  });
  session.on("subsystem", (accept, reject, info) => {
    if (started || info.name !== "sftp") return reject?.();
    run("subsystem", accept());
  });
}
