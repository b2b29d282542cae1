/**
 * Prefs (docs/localapi.md `Prefs`): what the user asked for, persisted in prefs.json.
 * Validation of `PATCH /localapi/v0/prefs` bodies and `UpRequest`s lives here too: every
 * refusal is a LatticedError `bad_request` naming the field and the value.
 */
import { parseIp, formatIp } from "@lattice/netaddr";
import { LatticedError } from "./errors.js";
import { parseAdvertiseRoutes } from "./routes.js";

/** The user's preferences (Tailscale's ipn.Prefs subset, same field names). */
export interface Prefs {
  ControlURL: string;
  WantRunning: boolean;
  Hostname: string;
  RunSSH: boolean;
  AdvertiseTags: string[];
  RouteAll: boolean;
  CorpDNS: boolean;
  /** Routes offered to the tailnet (canonical CIDRs; exit node = 0.0.0.0/0 + ::/0). */
  AdvertiseRoutes: string[];
  /** StableNodeID of the exit node in use, "" = none (resolved by the daemon from ExitNodeIP). */
  ExitNodeID: string;
  /** Tailnet IP of the exit node in use as the client gave it, "" = none. */
  ExitNodeIP: string;
  /** With an exit node: keep directly connected LANs outside the tunnel. */
  ExitNodeAllowLANAccess: boolean;
  /** Subnet router/exit node: keep clients' source addresses (no MASQUERADE; `--snat-subnet-routes=false`). */
  NoSNAT: boolean;
  /** Set from what the control server says about this node; read-only for clients. */
  Ephemeral: boolean;
}

/** POST /localapi/v0/up body. */
export interface UpRequest {
  ControlURL?: string;
  AuthKey?: string;
  Hostname?: string;
  RunSSH?: boolean;
  AdvertiseTags?: string[];
  RouteAll?: boolean;
  CorpDNS?: boolean;
  AdvertiseRoutes?: string[];
  ExitNodeID?: string;
  ExitNodeIP?: string;
  ExitNodeAllowLANAccess?: boolean;
  NoSNAT?: boolean;
  Reset?: boolean;
  ForceReauth?: boolean;
}

/** Defaults of a fresh node (Tailscale's: CorpDNS on, RouteAll off on Linux). */
export function defaultPrefs(): Prefs {
  return { ControlURL: "", WantRunning: false, Hostname: "", RunSSH: false, AdvertiseTags: [], RouteAll: false, CorpDNS: true, AdvertiseRoutes: [], ExitNodeID: "", ExitNodeIP: "", ExitNodeAllowLANAccess: false, NoSNAT: false, Ephemeral: false };
}

/** The user-settable prefs fields (PATCH and up). */
const SETTABLE = ["ControlURL", "WantRunning", "Hostname", "RunSSH", "AdvertiseTags", "RouteAll", "CorpDNS", "AdvertiseRoutes", "ExitNodeID", "ExitNodeIP", "ExitNodeAllowLANAccess", "NoSNAT"] as const;
type Settable = (typeof SETTABLE)[number];

const STABLE_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
const TAG_RE = /^tag:[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
// RFC 1123 label-ish host names as Tailscale accepts (it sanitises; we refuse clearly).
const HOST_RE = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

function bad(field: string, value: unknown, why: string): LatticedError {
  const shown = JSON.stringify(value);
  return new LatticedError("bad_request", `${field}: ${why} (got ${shown === undefined ? "undefined" : shown.length > 80 ? shown.slice(0, 80) + "…" : shown})`);
}

function checkField(field: Settable, v: unknown): Prefs[Settable] {
  switch (field) {
    case "ControlURL": {
      if (typeof v !== "string") throw bad(field, v, "must be a string");
      if (v === "") return v;
      let u: URL;
      try {
        u = new URL(v);
      } catch {
        throw bad(field, v, "must be an http:// or https:// URL");
      }
      if (u.protocol !== "http:" && u.protocol !== "https:") throw bad(field, v, "must be an http:// or https:// URL");
      if (u.username || u.password) throw bad(field, v, "must not carry credentials");
      return v.replace(/\/+$/, "");
    }
    case "Hostname":
      if (typeof v !== "string") throw bad(field, v, "must be a string");
      if (v !== "" && !HOST_RE.test(v)) throw bad(field, v, "must be a DNS label: letters, digits and '-', at most 63 characters");
      return v;
    case "AdvertiseTags": {
      if (!Array.isArray(v)) throw bad(field, v, 'must be a list of "tag:name" strings');
      if (v.length > 64) throw bad(field, v, "at most 64 tags");
      v.forEach((t, i) => {
        if (typeof t !== "string" || !TAG_RE.test(t)) throw bad(`${field}[${i}]`, t, 'must be "tag:" followed by letters, digits, "-" or "_"');
      });
      return [...new Set(v as string[])];
    }
    case "AdvertiseRoutes":
      return parseAdvertiseRoutes(v, field);
    case "ExitNodeIP": {
      if (typeof v !== "string") throw bad(field, v, 'must be a tailnet IP address string ("" = no exit node)');
      if (v === "") return v;
      const ip = parseIp(v);
      if (!ip) throw bad(field, v, 'must be a tailnet IP address ("" = no exit node)');
      return formatIp(ip.bytes);
    }
    case "ExitNodeID":
      if (typeof v !== "string" || (v !== "" && !STABLE_ID_RE.test(v))) throw bad(field, v, 'must be a StableNodeID ("" = no exit node)');
      return v;
    default:
      if (typeof v !== "boolean") throw bad(field, v, "must be true or false");
      return v;
  }
}

/**
 * Validates a PATCH body: an object whose keys are settable Prefs fields. `Ephemeral`
 * is refused (read-only), unknown fields too. Returns the checked partial prefs.
 */
export function parsePrefsPatch(body: unknown): Partial<Prefs> {
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw new LatticedError("bad_request", "body: must be a JSON object of Prefs fields");
  const out: Partial<Record<Settable, unknown>> = {};
  for (const [k, v] of Object.entries(body)) {
    if (k === "Ephemeral") throw bad(k, v, "is read-only (it comes from the auth key)");
    if (!(SETTABLE as readonly string[]).includes(k)) throw bad(k, v, `unknown Prefs field (known: ${SETTABLE.join(", ")})`);
    out[k as Settable] = checkField(k as Settable, v);
  }
  return out as Partial<Prefs>;
}

/** Validates an UpRequest body (unknown fields refused, each field checked). */
export function parseUpRequest(body: unknown): UpRequest {
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw new LatticedError("bad_request", "body: must be a JSON object (UpRequest)");
  const out: UpRequest = {};
  for (const [k, v] of Object.entries(body)) {
    switch (k) {
      case "AuthKey":
        if (typeof v !== "string" || v.length > 512) throw bad(k, v, "must be a string of at most 512 characters");
        if (v !== "") out.AuthKey = v;
        break;
      case "Reset":
      case "ForceReauth":
        if (typeof v !== "boolean") throw bad(k, v, "must be true or false");
        out[k] = v;
        break;
      case "ControlURL":
      case "Hostname":
      case "RunSSH":
      case "AdvertiseTags":
      case "RouteAll":
      case "CorpDNS":
      case "AdvertiseRoutes":
      case "ExitNodeID":
      case "ExitNodeIP":
      case "ExitNodeAllowLANAccess":
      case "NoSNAT":
        (out as Record<string, unknown>)[k] = checkField(k, v);
        break;
      default:
        throw bad(k, v, "unknown UpRequest field");
    }
  }
  return out;
}

/** Applies a checked patch to `prefs` (returns a new object). */
export function applyPatch(prefs: Prefs, patch: Partial<Prefs>): Prefs {
  return { ...prefs, ...patch, AdvertiseTags: [...(patch.AdvertiseTags ?? prefs.AdvertiseTags)], AdvertiseRoutes: [...(patch.AdvertiseRoutes ?? prefs.AdvertiseRoutes)] };
}

/** The prefs after an `up`: the given fields set; with Reset, the fields not given go back to defaults. */
export function prefsForUp(prefs: Prefs, req: UpRequest): Prefs {
  const base = req.Reset ? { ...defaultPrefs(), ControlURL: prefs.ControlURL, Ephemeral: prefs.Ephemeral } : prefs;
  const patch: Partial<Prefs> = {};
  for (const k of SETTABLE) if (k !== "WantRunning" && (req as Record<string, unknown>)[k] !== undefined) (patch as Record<string, unknown>)[k] = (req as Record<string, unknown>)[k];
  return applyPatch({ ...base, WantRunning: true }, patch);
}

/** Reads stored prefs tolerantly: known fields of the right type, defaults for the rest. */
export function loadPrefs(stored: unknown): Prefs {
  const p = defaultPrefs();
  if (typeof stored !== "object" || stored === null) return p;
  const s = stored as Record<string, unknown>;
  for (const k of [...SETTABLE, "Ephemeral"] as const) {
    if (s[k] === undefined) continue;
    try {
      if (k === "Ephemeral") {
        if (typeof s[k] === "boolean") p.Ephemeral = s[k] as boolean;
      } else (p as unknown as Record<string, unknown>)[k] = checkField(k, s[k]);
    } catch {
      /* keep the default for a field that no longer validates */
    }
  }
  return p;
}
