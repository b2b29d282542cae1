/**
 * The console's page shell: navigation (Machines, Users, Access controls, DNS, Logs,
 * Settings — Tailscale's names), the signed-in user with a logout form, flash and error
 * messages, and the response headers every console page carries (CSP without inline
 * scripts, no framing, no caching, no sniffing, no referrer to other sites).
 */
import type { ServerResponse } from "node:http";

/** Escapes text for HTML (element content and quoted attributes). */
export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[ch]!);
}

/** Security headers of every console response. */
export const CONSOLE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  "cache-control": "no-store",
  "x-frame-options": "DENY",
  "x-content-type-options": "nosniff",
  "referrer-policy": "same-origin",
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
});

/** The sections, in navigation order: [path, link text]. */
export const SECTIONS = [
  ["/admin/machines", "Machines"],
  ["/admin/users", "Users"],
  ["/admin/acls", "Access controls"],
  ["/admin/dns", "DNS"],
  ["/admin/logs", "Logs"],
  ["/admin/settings", "Settings"],
] as const;

/** Who is looking at a page. */
export interface Viewer {
  login: string;
  role: string;
  /** Owner or admin: may change things (forms are shown). */
  admin: boolean;
  /** The CSRF token for this session's forms. */
  csrf: string;
}

/** A hidden CSRF field. */
export function csrfField(v: Viewer): string {
  return `<input type="hidden" name="csrf" value="${esc(v.csrf)}">`;
}

/**
 * A one-button POST form (for admins only; "" for members, who see no change buttons).
 * `confirm`: the question asked first (with the script).
 */
export function actionButton(v: Viewer, action: string, label: string, o: { danger?: boolean; confirm?: string; fields?: Record<string, string> } = {}): string {
  if (!v.admin) return "";
  const fields = Object.entries(o.fields ?? {})
    .map(([k, val]) => `<input type="hidden" name="${esc(k)}" value="${esc(val)}">`)
    .join("");
  return `<form method="post" action="${esc(action)}"${o.confirm ? ` data-confirm="${esc(o.confirm)}"` : ""}>${csrfField(v)}${fields}<button type="submit"${o.danger ? ' class="danger"' : ""}>${esc(label)}</button></form>`;
}

/** Renders a whole console page. `active` is the section's path. */
export function consolePage(v: Viewer, active: string, title: string, body: string, o: { flash?: string | null; error?: string | null } = {}): string {
  const nav = SECTIONS.map(([href, text]) => `<a href="${href}"${href === active ? ' aria-current="page"' : ""}>${esc(text)}</a>`).join("");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)} · Lattice admin</title><link rel="stylesheet" href="/admin/static/console.css"><script src="/admin/static/console.js" defer></script></head>
<body><header><a class="brand" href="/admin/machines">Lattice</a><nav aria-label="Console sections">${nav}</nav>
<div class="who"><span>${esc(v.login)} <span class="badge">${esc(v.role)}</span></span><form method="post" action="/logout">${csrfField(v)}<button type="submit">Log out</button></form></div></header>
<main><h1>${esc(title)}</h1>${o.flash ? `<p class="flash" role="status">${esc(o.flash)}</p>` : ""}${o.error ? `<p class="err" role="alert">${esc(o.error)}</p>` : ""}${body}</main></body></html>`;
}

/** Sends an HTML page with the console headers. */
export function sendHtml(res: ServerResponse, status: number, html: string, headers: Record<string, string> = {}): void {
  const data = Buffer.from(html);
  res.writeHead(status, { ...CONSOLE_HEADERS, "content-type": "text/html; charset=utf-8", "content-length": data.length, ...headers });
  res.end(data);
}

/** "in 23 days", "3 hours ago", "just now": a time relative to `now`. */
export function relTime(t: number, now: number): string {
  const d = t - now;
  const a = Math.abs(d);
  const units: [number, string][] = [
    [86_400_000, "day"],
    [3_600_000, "hour"],
    [60_000, "minute"],
  ];
  for (const [size, name] of units) {
    if (a >= size) {
      const n = Math.floor(a / size);
      const s = `${n} ${name}${n === 1 ? "" : "s"}`;
      return d >= 0 ? `in ${s}` : `${s} ago`;
    }
  }
  return "just now";
}

/** A timestamp with its relative time, in a `<time>` element. */
export function timeCell(ms: number | null, now: number, none = "—"): string {
  if (ms == null) return none;
  const iso = new Date(ms).toISOString();
  return `<time datetime="${iso}" title="${iso}">${esc(relTime(ms, now))}</time>`;
}
