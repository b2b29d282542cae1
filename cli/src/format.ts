/**
 * Text output shared by the commands, following Tailscale's CLI (cmd/tailscale/cli/status.go,
 * cli.go at de9ec7ee): Go-style durations, Go text/tabwriter alignment, the state messages.
 */
import { compareIps } from "./resolve.js";
import type { PeerStatus, Status } from "./types.js";

/**
 * Makes text safe for a terminal: C0/C1 control characters (except newline and tab) and the
 * Unicode bidi/line-separator controls become visible escapes (`\x1b`, `\u202e`). Names,
 * OS strings and error texts come from other nodes and the control server; none of them may
 * move the cursor, retitle the terminal or hide text. Applied to every text line the CLI
 * prints (cli.ts); JSON output is already escaped.
 */
export function terminalSafe(s: string): string {
  return s.replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028-\u202e\u2066-\u2069]/g, (c) => {
    const n = c.charCodeAt(0);
    return n <= 0xff ? `\\x${n.toString(16).padStart(2, "0")}` : `\\u${n.toString(16).padStart(4, "0")}`;
  });
}

/** Go's zero time as the LocalAPI sends it for "never". */
export const ZERO_TIME = "0001-01-01T00:00:00Z";

/**
 * Formats milliseconds as Go's time.Duration.String does ("0s", "850µs", "23ms", "1.5s",
 * "2m3.25s", "1h0m0s"). `ms` is expected to be pre-rounded by the caller as Tailscale rounds
 * (ping: to 1 ms; netcheck: to 0.1 ms).
 */
export function formatGoDurationMs(ms: number): string {
  if (ms === 0) return "0s";
  const neg = ms < 0;
  const abs = Math.abs(ms);
  let out: string;
  if (abs < 1) out = `${trimNum(abs * 1000)}µs`;
  else if (abs < 1000) out = `${trimNum(abs)}ms`;
  else {
    const h = Math.floor(abs / 3_600_000);
    const m = Math.floor((abs - h * 3_600_000) / 60_000);
    const s = (abs - h * 3_600_000 - m * 60_000) / 1000;
    out = h > 0 ? `${h}h${m}m${trimNum(s)}s` : m > 0 ? `${m}m${trimNum(s)}s` : `${trimNum(s)}s`;
  }
  return neg ? `-${out}` : out;
}

function trimNum(n: number): string {
  // at most 9 fractional digits, trailing zeros dropped (Go prints the exact nanoseconds)
  return String(Number(n.toFixed(9)));
}

/**
 * Aligns rows like Go's text/tabwriter with `padding` spaces after the widest cell of each
 * column (cells are the tab-terminated ones; the last cell of a row is not aligned).
 * A row with no tab-terminated cell ends the column block, as in tabwriter. Trailing spaces
 * are trimmed from every line (Tailscale's output has them; they only trouble scripts).
 */
export function tabulate(rows: string[][], opts: { minWidth?: number; padding: number }): string {
  const out: string[] = [];
  let block: string[][] = [];
  const flush = (): void => {
    if (block.length === 0) return;
    const widths: number[] = [];
    for (const r of block) r.slice(0, -1).forEach((c, i) => { widths[i] = Math.max(widths[i] ?? 0, [...c].length); });
    for (const r of block) {
      const cells = r.slice(0, -1).map((c, i) => c + " ".repeat(Math.max(opts.minWidth ?? 0, widths[i]! + opts.padding) - [...c].length));
      out.push((cells.join("") + r[r.length - 1]!).trimEnd());
    }
    block = [];
  };
  for (const r of rows) {
    if (r.length <= 1) {
      flush();
      out.push((r[0] ?? "").trimEnd());
    } else block.push(r);
  }
  flush();
  return out.map((l) => l + "\n").join("");
}

/**
 * The message for a state the CLI cannot work in, or null for Running/Starting (Tailscale's
 * isRunningOrStarting, with Lattice's names).
 */
export function notRunningDescription(st: Pick<Status, "BackendState" | "AuthURL">): string | null {
  switch (st.BackendState) {
    case "Running":
    case "Starting":
      return null;
    case "Stopped":
      return "Lattice is stopped.";
    case "NeedsLogin":
      return st.AuthURL ? `Logged out.\nLog in at: ${st.AuthURL}` : "Logged out.";
    case "NeedsMachineAuth":
      return "Machine is not yet approved by an admin.";
    default:
      return `unexpected state: ${String(st.BackendState)}`;
  }
}

/** `, last seen 5m ago` / `3h` / `2d` (at least 1 minute), "" for the zero time or none. */
export function lastSeenSuffix(lastSeen: string | undefined, nowMs: number): string {
  if (!lastSeen || lastSeen === ZERO_TIME) return "";
  const t = Date.parse(lastSeen);
  if (Number.isNaN(t) || t <= Date.parse(ZERO_TIME) + 1000) return "";
  const d = Math.max(nowMs - t, 60_000);
  if (d < 3_600_000) return `, last seen ${Math.floor(d / 60_000)}m ago`;
  if (d < 86_400_000) return `, last seen ${Math.floor(d / 3_600_000)}h ago`;
  return `, last seen ${Math.floor(d / 86_400_000)}d ago`;
}

/** The Hostname column: the first label of DNSName, else `("HostName")`. */
export function displayName(ps: Pick<PeerStatus, "DNSName" | "HostName">): string {
  const label = (ps.DNSName ?? "").split(".")[0] ?? "";
  return label !== "" ? label : `(${JSON.stringify(ps.HostName ?? "")})`;
}

/**
 * The Owner column: `tagged-devices` for a tagged node, else the user's login name up to and
 * including "@" (Tailscale prints `alice@` for alice@example.com), `-` without a user.
 */
export function ownerLogin(st: Pick<Status, "User">, ps: Pick<PeerStatus, "UserID" | "Tags">): string {
  if (ps.Tags && ps.Tags.length > 0) return "tagged-devices";
  if (!ps.UserID) return "-";
  const u = st.User?.[String(ps.UserID)];
  if (!u || typeof u.LoginName !== "string") return String(ps.UserID);
  const at = u.LoginName.indexOf("@");
  return at >= 0 ? u.LoginName.slice(0, at + 1) : u.LoginName;
}

/**
 * The Status column of `status` (Tailscale's rules, peer relays aside), except that a
 * peer that is online and never exchanged traffic says `idle` where Tailscale prints `-`
 * (issue 8 names the states active / idle / offline). The Self row keeps `-`.
 */
export function peerStatusText(ps: PeerStatus, nowMs: number, self = false): string {
  const anyTraffic = (ps.TxBytes ?? 0) !== 0 || (ps.RxBytes ?? 0) !== 0;
  const offline = ps.Online ? "" : `; offline${lastSeenSuffix(ps.LastSeen, nowMs)}`;
  let s: string;
  if (!ps.Active) {
    if (ps.ExitNode) s = `idle; exit node${offline}`;
    else if (ps.ExitNodeOption) s = `idle; offers exit node${offline}`;
    else if (anyTraffic) s = `idle${offline}`;
    else if (!ps.Online) s = `offline${lastSeenSuffix(ps.LastSeen, nowMs)}`;
    else s = self ? "-" : "idle";
  } else {
    s = "active; ";
    if (ps.ExitNode) s += "exit node; ";
    else if (ps.ExitNodeOption) s += "offers exit node; ";
    if (ps.CurAddr) s += `direct ${ps.CurAddr}`;
    else if (ps.Relay) s += `relay ${JSON.stringify(ps.Relay)}`;
    s += offline;
  }
  if (anyTraffic) s += `, tx ${ps.TxBytes} rx ${ps.RxBytes}`;
  return s;
}

/** Tailscale's peer order: DNSName, then HostName, then first IP, then public key. */
export function comparePeers(a: PeerStatus, b: PeerStatus): number {
  const cmp = (x: string, y: string): number => (x < y ? -1 : x > y ? 1 : 0);
  if (a.DNSName || b.DNSName) {
    const v = cmp(a.DNSName ?? "", b.DNSName ?? "");
    if (v !== 0) return v;
  }
  if (a.HostName || b.HostName) {
    const v = cmp(a.HostName ?? "", b.HostName ?? "");
    if (v !== 0) return v;
  }
  const ia = a.TailscaleIPs?.[0];
  const ib = b.TailscaleIPs?.[0];
  if (ia && ib) {
    const v = compareIps(ia, ib);
    if (v !== 0) return v;
  }
  return cmp(a.PublicKey ?? "", b.PublicKey ?? "");
}
