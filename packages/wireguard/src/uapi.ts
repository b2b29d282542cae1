/**
 * WireGuard's cross-platform userspace API (UAPI) text protocol, sans-IO: parse `get=1`
 * and `set=1` requests, print `get` replies and errno trailers, and frame requests out of
 * a byte stream. Keys, order and error numbers follow wireguard-go's `device/uapi.go`,
 * so `wg show`, `wg set` and `wg setconf` work unchanged.
 *
 * One deliberate difference: wireguard-go applies a `set` line by line, so a bad line
 * leaves the lines before it applied. {@link parseUapiRequest} validates the whole
 * request first; the device then applies all of it or (on error) none of it. The
 * resulting {@link DeviceUpdate} still means what the lines meant in order: a
 * `replace_allowed_ips=true` line drops the `allowed_ip` lines before it in the same
 * peer section, and device keys after the first `public_key` are errors.
 */

import { Endpoint as EndpointClass, type AllowedIp, type DeviceSnapshot, type DeviceUpdate, type Endpoint, type PeerUpdate } from "./api.js";
import { parsePrefix } from "./ipaddr.js";

/** POSIX errno values UAPI replies carry (Linux numbering), named as wireguard-go's `ipc`. */
export const UapiErrno = {
  /** ipc.IpcErrorIO: reading or writing the socket failed, or the request is too large. */
  IO: 5,
  /** ipc.IpcErrorInvalid: a key or value is invalid. */
  INVALID: 22,
  /** ipc.IpcErrorProtocol: a line is not `key=value`, or the framing is wrong. */
  PROTOCOL: 71,
  /** ipc.IpcErrorPortInUse: the listen port (or fwmark) could not be applied. */
  PORT_IN_USE: 98,
  /** ipc.IpcErrorUnknown (ENOANO): any other failure. */
  UNKNOWN: 55,
} as const;

const CODE_BY_ERRNO: Record<number, string> = {
  5: "UAPI_IO",
  22: "UAPI_INVALID",
  71: "UAPI_PROTOCOL",
  98: "UAPI_PORT_IN_USE",
  55: "UAPI_UNKNOWN",
};

/**
 * A UAPI request failed. `errno` is the positive POSIX number (22 for EINVAL); on the
 * wire it is sent negated, as wireguard-go does (see {@link formatUapiErrno}).
 */
export class UapiError extends Error {
  override readonly name = "UapiError";
  /** Stable code: UAPI_INVALID, UAPI_PROTOCOL, UAPI_IO, UAPI_PORT_IN_USE or UAPI_UNKNOWN. */
  readonly code: string;
  /** Positive errno (see {@link UapiErrno}). */
  readonly errno: number;
  /** 1-based line of the request (line 1 is `set=1`), when the error has one. */
  readonly line: number | undefined;
  /** The key of the offending line, when known. */
  readonly key: string | undefined;

  constructor(errno: number, message: string, line?: number, key?: string) {
    super(line === undefined ? message : `line ${line}: ${message}`);
    this.errno = errno;
    this.code = CODE_BY_ERRNO[errno] ?? "UAPI_UNKNOWN";
    this.line = line;
    this.key = key;
  }
}

/** A parsed UAPI request. */
export type UapiRequest = { readonly op: "get" } | { readonly op: "set"; readonly update: DeviceUpdate };

/**
 * Parses one complete request: exactly `get=1\n\n`, or `set=1\n`, `key=value` lines,
 * and an empty line (a trailing `\r` on a set line is ignored, as Go's line scanner
 * does). Keys are 64 hex digits (either case, as Go's decoder); an all-zero private key
 * or preshared key means "remove" and yields null; a non-zero private key is clamped as
 * wireguard-go stores it. Endpoints are `a.b.c.d:port` or `[v6]:port` only (the `wg`
 * tool resolves names). `allowed_ip=-prefix` (removal, newer wireguard-tools) is refused
 * with EINVAL: the {@link PeerUpdate} seam cannot express it. Throws {@link UapiError}.
 */
export function parseUapiRequest(text: string): UapiRequest {
  if (text === "get=1\n\n") return { op: "get" };
  if (text.startsWith("get=1\n")) {
    throw new UapiError(UapiErrno.INVALID, "trailing characters in UAPI get", 2);
  }
  if (!text.startsWith("set=1\n")) {
    throw new UapiError(UapiErrno.PROTOCOL, `invalid UAPI operation ${quote(text.slice(0, text.indexOf("\n") + 1 || 40))}`, 1);
  }
  return { op: "set", update: parseSetBody(text) };
}

function parseSetBody(text: string): DeviceUpdate {
  const update: DeviceUpdate = { replacePeers: false, peers: [] };
  let peer: PeerUpdate | null = null;
  let pos = 6;
  let lineNo = 1;
  for (;;) {
    lineNo++;
    const nl = text.indexOf("\n", pos);
    if (nl < 0) throw new UapiError(UapiErrno.PROTOCOL, "request not terminated by an empty line", lineNo);
    let end = nl;
    if (end > pos && text.charCodeAt(end - 1) === 13) end--;
    const line = text.slice(pos, end);
    pos = nl + 1;
    if (line === "") {
      if (pos !== text.length) throw new UapiError(UapiErrno.PROTOCOL, "data after the end of the request", lineNo + 1);
      return update;
    }
    const eq = line.indexOf("=");
    if (eq < 0) throw new UapiError(UapiErrno.PROTOCOL, `failed to parse line ${quote(line)}: no "="`, lineNo);
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    if (key === "public_key") {
      peer = {
        publicKey: hexKey(value, key, lineNo),
        remove: false,
        updateOnly: false,
        replaceAllowedIps: false,
        allowedIps: [],
      };
      update.peers.push(peer);
    } else if (peer === null) {
      deviceLine(update, key, value, lineNo);
    } else {
      peerLine(peer, key, value, lineNo);
    }
  }
}

function deviceLine(update: DeviceUpdate, key: string, value: string, line: number): void {
  switch (key) {
    case "private_key": {
      const k = hexKey(value, key, line);
      if (isZero(k)) update.privateKey = null;
      else {
        k[0] &= 248;
        k[31] = (k[31] & 127) | 64;
        update.privateKey = k;
      }
      return;
    }
    case "listen_port":
      update.listenPort = uint(value, 0xffff, key, line);
      return;
    case "fwmark":
      update.fwmark = uint(value, 0xffffffff, key, line);
      return;
    case "replace_peers":
      update.replacePeers = mustBeTrue(value, key, line);
      return;
    default:
      throw new UapiError(UapiErrno.INVALID, `invalid UAPI device key ${quote(key)}`, line, key);
  }
}

function peerLine(peer: PeerUpdate, key: string, value: string, line: number): void {
  switch (key) {
    case "update_only":
      peer.updateOnly = mustBeTrue(value, key, line);
      return;
    case "remove":
      peer.remove = mustBeTrue(value, key, line);
      return;
    case "preshared_key": {
      const k = hexKey(value, key, line);
      peer.presharedKey = isZero(k) ? null : k;
      return;
    }
    case "endpoint": {
      const ep = parseEndpoint(value);
      if (ep === null) throw invalid(key, value, line, "want a.b.c.d:port or [ipv6]:port (numeric, no hostnames)");
      peer.endpoint = ep;
      return;
    }
    case "persistent_keepalive_interval":
      peer.persistentKeepaliveInterval = uint(value, 0xffff, key, line);
      return;
    case "replace_allowed_ips":
      peer.replaceAllowedIps = mustBeTrue(value, key, line);
      peer.allowedIps.length = 0; // earlier allowed_ip lines of this section are replaced too
      return;
    case "allowed_ip": {
      if (value.startsWith("-")) {
        throw invalid(key, value, line, "removing a single allowed IP is not supported; use replace_allowed_ips");
      }
      const p = parsePrefix(value);
      if (p === null) throw invalid(key, value, line, "want address/prefix-length");
      peer.allowedIps.push(p);
      return;
    }
    case "protocol_version":
      if (value !== "1") throw invalid(key, value, line, "only protocol version 1 exists");
      peer.protocolVersion = 1;
      return;
    default:
      throw new UapiError(UapiErrno.INVALID, `invalid UAPI peer key ${quote(key)}`, line, key);
  }
}

function invalid(key: string, value: string, line: number, why: string): UapiError {
  return new UapiError(UapiErrno.INVALID, `invalid ${key} ${quote(value)}: ${why}`, line, key);
}

function quote(s: string): string {
  return JSON.stringify(s.length > 80 ? s.slice(0, 80) + "…" : s);
}

function mustBeTrue(value: string, key: string, line: number): true {
  if (value !== "true") throw invalid(key, value, line, 'the only accepted value is "true"');
  return true;
}

function uint(value: string, max: number, key: string, line: number): number {
  if (!/^[0-9]+$/.test(value)) throw invalid(key, value, line, "want a decimal number");
  const n = Number(value);
  if (n > max) throw invalid(key, value, line, `must be at most ${max}`);
  return n;
}

function hexKey(value: string, key: string, line: number): Uint8Array {
  if (value.length !== 64) throw invalid(key, value, line, "want 64 hex digits");
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) {
    const hi = hexDigit(value.charCodeAt(2 * i));
    const lo = hexDigit(value.charCodeAt(2 * i + 1));
    if (hi < 0 || lo < 0) throw invalid(key, value, line, "want 64 hex digits");
    out[i] = (hi << 4) | lo;
  }
  return out;
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

function isZero(k: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < k.length; i++) acc |= k[i];
  return acc === 0;
}

/**
 * Parses a numeric UDP endpoint as Go's `netip.ParseAddrPort`: `a.b.c.d:port` or
 * `[ipv6]:port` (an IPv6 zone such as `[fe80::1%eth0]:51820` is kept). Returns null for
 * anything else. (@lattice/netaddr's `Endpoint.parse`.)
 */
export function parseEndpoint(text: string): Endpoint | null {
  return EndpointClass.parse(text);
}

/** Formats an endpoint as UAPI (and Go) print it: `1.2.3.4:51820`, `[::1]:51820`. */
export function formatEndpoint(ep: Endpoint): string {
  return ep.toString();
}

const HEX = "0123456789abcdef";
function hex(k: Uint8Array | null): string {
  let s = "";
  for (let i = 0; i < 32; i++) {
    const b = k === null ? 0 : k[i];
    s += HEX[b >> 4] + HEX[b & 15];
  }
  return s;
}

/**
 * The reply to `get=1`, in wireguard-go's order: `private_key` (if set), `listen_port`
 * (if non-zero), `fwmark` (if non-zero), then per peer `public_key`, `preshared_key`
 * (zeros when none), `protocol_version=1`, `endpoint` (if known),
 * `last_handshake_time_sec`, `last_handshake_time_nsec`, `tx_bytes`, `rx_bytes`,
 * `persistent_keepalive_interval`, and one `allowed_ip` per prefix; then `errno=0`
 * and the empty line.
 */
export function formatUapiGet(snapshot: DeviceSnapshot): string {
  const out: string[] = [];
  if (snapshot.privateKey !== null && !isZero(snapshot.privateKey)) out.push(`private_key=${hex(snapshot.privateKey)}`);
  if (snapshot.listenPort !== 0) out.push(`listen_port=${snapshot.listenPort}`);
  if (snapshot.fwmark !== 0) out.push(`fwmark=${snapshot.fwmark}`);
  for (const p of snapshot.peers) {
    out.push(`public_key=${hex(p.publicKey)}`);
    out.push(`preshared_key=${hex(p.presharedKey)}`);
    out.push("protocol_version=1");
    if (p.endpoint !== null) out.push(`endpoint=${formatEndpoint(p.endpoint)}`);
    out.push(`last_handshake_time_sec=${p.lastHandshakeTimeSec}`);
    out.push(`last_handshake_time_nsec=${p.lastHandshakeTimeNsec}`);
    out.push(`tx_bytes=${p.txBytes}`);
    out.push(`rx_bytes=${p.rxBytes}`);
    out.push(`persistent_keepalive_interval=${p.persistentKeepaliveInterval}`);
    for (const a of p.allowedIps) out.push(`allowed_ip=${formatAllowedIp(a)}`);
  }
  out.push("errno=0", "", "");
  return out.join("\n");
}

function formatAllowedIp(a: AllowedIp): string {
  return `${a.address}/${a.bits}`;
}

/**
 * The status trailer `errno=N\n\n`. A non-zero errno is written negated whatever sign
 * it is given (`errno=-22`), as wireguard-go does and as `wg set` expects (it reports
 * `-N` as error N).
 */
export function formatUapiErrno(errno: number): string {
  return `errno=${errno === 0 ? 0 : -Math.abs(errno)}\n\n`;
}

/** What {@link UapiFramer} yields: a complete request's text, or a stream error. */
export type UapiFrame =
  | { readonly type: "request"; readonly text: string }
  | {
      readonly type: "error";
      readonly error: UapiError;
      /** Whether to write `formatUapiErrno(error.errno)` before going on or closing. */
      readonly reply: boolean;
      /** Whether the connection must be closed (the stream cannot be resynchronised). */
      readonly close: boolean;
    };

/** Options of {@link UapiFramer}. */
export interface UapiFramerOptions {
  /** Largest request accepted, in bytes (default 64 MiB: ~70k allowed IPs take ~2 MiB). */
  readonly maxRequestBytes?: number;
}

const MAX_OP_LINE = 64;

/**
 * Cuts a UAPI socket's byte stream into requests, as wireguard-go's connection loop
 * reads it: an operation line (`get=1` or `set=1`); a get is followed by exactly one
 * `\n` (any other byte yields an EINVAL error frame and is skipped); a set runs to the
 * first empty line (or `\r` line). An unknown operation line yields a closing error
 * without reply (wireguard-go hangs up); a request over the size cap yields an EIO
 * error with reply, then close. Once closed, further input is ignored.
 */
export class UapiFramer {
  private readonly max: number;
  private readonly decoder = new TextDecoder();
  private state: "op" | "get" | "set" | "closed" = "op";
  private parts: Uint8Array[] = [];
  private size = 0;
  /** Length of the current (unterminated) line in set state, and its first byte. */
  private lineLen = 0;
  private lineFirst = -1;

  constructor(options: UapiFramerOptions = {}) {
    this.max = options.maxRequestBytes ?? 64 * 1024 * 1024;
  }

  /** True once a fatal error was yielded. */
  get closed(): boolean {
    return this.state === "closed";
  }

  /** Feeds bytes; returns the frames they complete, in order. */
  push(chunk: Uint8Array): UapiFrame[] {
    const out: UapiFrame[] = [];
    let pos = 0;
    while (pos < chunk.length && this.state !== "closed") {
      if (this.state === "op") pos = this.readOp(chunk, pos, out);
      else if (this.state === "get") {
        if (chunk[pos] === 10) out.push({ type: "request", text: "get=1\n\n" });
        else {
          const e = new UapiError(UapiErrno.INVALID, `trailing character in UAPI get: ${chunk[pos]}`, 2);
          out.push({ type: "error", error: e, reply: true, close: false });
        }
        pos++;
        this.state = "op";
      } else pos = this.readSet(chunk, pos, out);
    }
    return out;
  }

  /** End of stream: a set cut short by EOF is completed, as wireguard-go applies it. */
  end(): UapiFrame[] {
    if (this.state !== "set") return [];
    let text = this.take();
    if (!text.endsWith("\n")) text += "\n";
    this.state = "closed";
    return [{ type: "request", text: text + "\n" }];
  }

  private readOp(chunk: Uint8Array, pos: number, out: UapiFrame[]): number {
    const nl = chunk.indexOf(10, pos);
    const stop = nl < 0 ? chunk.length : nl;
    this.append(chunk.subarray(pos, stop));
    if (this.size > MAX_OP_LINE) return this.fail(out, UapiErrno.PROTOCOL, "invalid UAPI operation line", false);
    if (nl < 0) return chunk.length;
    const op = this.take();
    if (op === "get=1") this.state = "get";
    else if (op === "set=1") {
      this.state = "set";
      this.append(new TextEncoder().encode("set=1\n"));
      this.lineLen = 0;
    } else return this.fail(out, UapiErrno.PROTOCOL, `invalid UAPI operation ${quote(op)}`, false);
    return nl + 1;
  }

  private readSet(chunk: Uint8Array, pos: number, out: UapiFrame[]): number {
    while (pos < chunk.length) {
      const nl = chunk.indexOf(10, pos);
      const stop = nl < 0 ? chunk.length : nl;
      if (stop > pos && this.lineLen === 0) this.lineFirst = chunk[pos];
      this.lineLen += stop - pos;
      if (this.size + (stop - pos) + 1 > this.max) {
        return this.fail(out, UapiErrno.IO, `request larger than ${this.max} bytes`, true);
      }
      if (nl < 0) {
        this.append(chunk.subarray(pos));
        return chunk.length;
      }
      this.append(chunk.subarray(pos, nl + 1));
      const empty = this.lineLen === 0 || (this.lineLen === 1 && this.lineFirst === 13);
      this.lineLen = 0;
      pos = nl + 1;
      if (empty) {
        out.push({ type: "request", text: this.take() });
        this.state = "op";
        return pos;
      }
    }
    return pos;
  }

  private fail(out: UapiFrame[], errno: number, message: string, reply: boolean): number {
    out.push({ type: "error", error: new UapiError(errno, message), reply, close: true });
    this.state = "closed";
    this.parts = [];
    this.size = 0;
    return Number.MAX_SAFE_INTEGER;
  }

  private append(b: Uint8Array): void {
    if (b.length === 0) return;
    this.parts.push(b.slice());
    this.size += b.length;
  }

  private take(): string {
    let all: Uint8Array;
    if (this.parts.length === 1) all = this.parts[0];
    else {
      all = new Uint8Array(this.size);
      let o = 0;
      for (const p of this.parts) {
        all.set(p, o);
        o += p.length;
      }
    }
    this.parts = [];
    this.size = 0;
    return this.decoder.decode(all);
  }
}
