/**
 * The one decoding path for request input that arrives percent-encoded or as a raw
 * request target: the request URL, REST path parameters and cookies. Malformed input is
 * a {@link ValidationError} (400) naming what and where — or, for cookies, which the
 * browser may carry for other applications on the same host, left as sent — never a
 * URIError/TypeError that would surface as a 500.
 */
import type { IncomingMessage } from "node:http";
import { ValidationError } from "../errors.js";

/** Largest request target accepted, in characters (node's header limit bounds it too). */
const MAX_TARGET = 8192;

/**
 * Parses the request target (RFC 9112 §3.2: origin-form `/path?query`, or absolute-form
 * `http(s)://host/path`) into a URL on `base`. The path is taken as sent: `//x/y` is
 * the path `//x/y`, never the host `x`. Throws ValidationError("bad_request_target").
 */
export function requestUrl(req: IncomingMessage, base = "http://localhost"): URL {
  const target = req.url ?? "";
  const bad = (why: string) => new ValidationError(`request target ${JSON.stringify(target.slice(0, 100))}: ${why}`, "bad_request_target");
  if (target.length > MAX_TARGET) throw bad(`longer than ${MAX_TARGET} characters`);
  try {
    if (target.startsWith("/")) return new URL(base.replace(/\/+$/, "") + target);
    if (/^https?:\/\//i.test(target)) return new URL(target);
  } catch {
    throw bad("not a valid URL");
  }
  throw bad("must be a path starting with / (or an absolute http URL)");
}

/**
 * Percent-decodes one path parameter; throws ValidationError("bad_path_parameter")
 * naming the parameter, the raw value and the position of the bad escape.
 */
export function decodePathParam(raw: string, name: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    const at = badEscapeAt(raw);
    throw new ValidationError(`path parameter ${name} ${JSON.stringify(raw.slice(0, 100))}: invalid percent-escape at position ${at + 1} (want %XX forming UTF-8)`, "bad_path_parameter");
  }
}

/** Index of the first percent-escape that does not decode (or -1). */
function badEscapeAt(s: string): number {
  let i = 0;
  while (i < s.length) {
    if (s[i] !== "%") {
      i++;
      continue;
    }
    // A run of escapes forms one UTF-8 sequence; try growing runs from here.
    let j = i;
    while (s[j] === "%" && /^[0-9a-fA-F]{2}$/.test(s.slice(j + 1, j + 3))) j += 3;
    if (j === i) return i;
    try {
      decodeURIComponent(s.slice(i, j));
      i = j;
    } catch {
      return i;
    }
  }
  return -1;
}

/**
 * Parses a Cookie header (RFC 6265 §5.4 pairs separated by `;`). Values are
 * percent-decoded when they decode; a value that does not is kept as sent (it may belong
 * to another application on the host and must not break our pages). First one wins for
 * a repeated name, as browsers send the most specific cookie first.
 */
export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (header ?? "").split(";")) {
    const i = part.indexOf("=");
    if (i < 0) continue;
    const name = part.slice(0, i).trim();
    if (name === "" || out.has(name)) continue;
    let value = part.slice(i + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    if (value.includes("%")) {
      try {
        value = decodeURIComponent(value);
      } catch {
        // keep as sent
      }
    }
    out.set(name, value);
  }
  return out;
}
