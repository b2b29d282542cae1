/**
 * The Machines page (list with search, filters and pages; one query per page, so 10,000
 * nodes cost one indexed page, see `bench:console`) and the machine detail page
 * (addresses, endpoints, DERP home, Hostinfo, SSH host keys, routes, what the policy lets
 * it reach and be reached from, and the admin actions).
 */
import { sql } from "kysely";
import type { Control } from "../app.js";
import type { NodeRow } from "../db/schema.js";
import { parseJson } from "../services/context.js";
import { effectiveExpiry, isExpired } from "../services/nodes.js";
import { loginName } from "../services/users.js";
import { actionButton, csrfField, esc, relTime, timeCell, type Viewer } from "./layout.js";

/** Machines per page. */
export const MACHINES_PAGE = 50;

/** The list's filters (query parameters `q`, `user`, `tag`, `status`, `page`). */
export interface MachineFilter {
  q: string;
  user: string;
  tag: string;
  /** "", online, offline, pending (needs approval), expiring (within 7 days), expired. */
  status: string;
  /** 1-based. */
  page: number;
}

/** Reads the filters from a URL's query. */
export function machineFilter(u: URL): MachineFilter {
  const page = Number(u.searchParams.get("page") ?? "1");
  const s = (k: string) => (u.searchParams.get(k) ?? "").trim().slice(0, 200);
  return { q: s("q"), user: s("user"), tag: s("tag"), status: s("status"), page: Number.isInteger(page) && page >= 1 && page <= 1e6 ? page : 1 };
}

type Row = NodeRow & { user_name: string | null; user_email: string | null };

const WEEK = 7 * 86_400_000;

/** One page of machines matching the filter, and how many match in all. */
export async function queryMachines(c: Control, f: MachineFilter): Promise<{ rows: Row[]; total: number }> {
  const now = c.ctx.now();
  const like = (s: string) => `%${s.replace(/[\\%_]/g, (ch) => `\\${ch}`)}%`;
  let q = c.db.kysely.selectFrom("nodes").leftJoin("users", "users.id", "nodes.user_id");
  if (f.q) {
    const p = like(f.q.toLowerCase());
    q = q.where((eb) =>
      eb.or([
        eb(sql`lower(nodes.given_name)`, "like", sql<string>`${p} escape '\\'`),
        eb(sql`lower(nodes.hostname)`, "like", sql<string>`${p} escape '\\'`),
        eb("nodes.ipv4", "like", sql<string>`${p} escape '\\'`),
        eb("nodes.ipv6", "like", sql<string>`${p} escape '\\'`),
        eb(sql`lower(nodes.tags)`, "like", sql<string>`${p} escape '\\'`),
        eb(sql`lower(users.name)`, "like", sql<string>`${p} escape '\\'`),
      ]),
    );
  }
  if (f.user) q = q.where(sql`lower(users.name)`, "=", f.user.toLowerCase());
  if (f.tag) q = q.where("nodes.tags", "like", sql<string>`${like(JSON.stringify(f.tag))} escape '\\'`);
  switch (f.status) {
    case "online":
      q = q.where("nodes.online", "=", 1);
      break;
    case "offline":
      q = q.where("nodes.online", "=", 0);
      break;
    case "pending":
      q = q.where("nodes.approved", "=", 0);
      break;
    case "expiring":
      q = q.where("nodes.expiry_disabled", "=", 0).where("nodes.key_expiry", ">", now).where("nodes.key_expiry", "<=", now + WEEK);
      break;
    case "expired":
      q = q.where("nodes.expiry_disabled", "=", 0).where("nodes.key_expiry", "<=", now);
      break;
    default:
      break;
  }
  const [rows, count] = await Promise.all([
    q
      .selectAll("nodes")
      .select(["users.name as user_name", "users.email as user_email"])
      .orderBy("nodes.given_name")
      .limit(MACHINES_PAGE)
      .offset((f.page - 1) * MACHINES_PAGE)
      .execute(),
    q.select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow(),
  ]);
  return { rows: rows as Row[], total: Number(count.n) };
}

/** "expires in 23 days", "expiry disabled", "expired", "no expiry" (tagged). */
export function expiryText(n: Pick<NodeRow, "key_expiry" | "expiry_disabled">, now: number): string {
  if (n.expiry_disabled) return "expiry disabled";
  const e = effectiveExpiry(n);
  if (e == null) return "no expiry";
  if (isExpired(n, now)) return "expired";
  return `expires ${relTime(e, now)}`;
}

const EXIT = ["0.0.0.0/0", "::/0"];

function routesCell(n: NodeRow): string {
  const adv = parseJson<{ RoutableIPs?: string[] }>(n.hostinfo, {}).RoutableIPs ?? [];
  const appr = new Set(parseJson<string[]>(n.approved_routes, []));
  const parts: string[] = [];
  for (const r of adv) if (!EXIT.includes(r)) parts.push(appr.has(r) ? `<span class="badge ok">${esc(r)}</span>` : `<span class="badge warn">${esc(r)} (pending)</span>`);
  if (adv.some((r) => EXIT.includes(r))) parts.push(EXIT.some((r) => appr.has(r)) ? `<span class="badge ok">exit node</span>` : `<span class="badge warn">exit node (pending)</span>`);
  return parts.join(" ") || "—";
}

function ownerCell(n: Row): string {
  const tags = parseJson<string[]>(n.tags, []);
  if (tags.length > 0) return tags.map((t) => `<span class="badge">${esc(t)}</span>`).join(" ");
  return n.user_name ? esc(loginName({ name: n.user_name, email: n.user_email })) : "—";
}

function statusCell(n: NodeRow, now: number): string {
  if (n.online) return `<span class="badge ok">online</span>`;
  return `<span class="badge">offline</span> <span class="muted">${n.last_seen != null ? `last seen ${esc(relTime(n.last_seen, now))}` : "never seen"}</span>`;
}

function osCell(n: NodeRow): string {
  const hi = parseJson<{ OS?: unknown; OSVersion?: unknown; IPNVersion?: unknown }>(n.hostinfo, {});
  const os = [hi.OS, hi.OSVersion].filter((x) => typeof x === "string" && x).join(" ");
  return `${esc(os || "—")}${typeof hi.IPNVersion === "string" ? `<br><span class="muted">${esc(hi.IPNVersion)}</span>` : ""}`;
}

function connCell(n: NodeRow): string {
  if (!n.online) return "—";
  return n.home_derp ? `DERP region ${n.home_derp}` : "unknown";
}

/** The Machines list page body. */
export function machinesBody(v: Viewer, f: MachineFilter, page: { rows: Row[]; total: number }, domain: string, now: number): string {
  const opt = (val: string, text: string) => `<option value="${val}"${f.status === val ? " selected" : ""}>${text}</option>`;
  const filters = `<form class="inline" method="get" action="/admin/machines" role="search">
<label>Search<input name="q" value="${esc(f.q)}" placeholder="name, IP, user, tag"></label>
<label>User<input name="user" value="${esc(f.user)}" size="10"></label>
<label>Tag<input name="tag" value="${esc(f.tag)}" size="10" placeholder="tag:server"></label>
<label>Status<select name="status">${opt("", "any")}${opt("online", "online")}${opt("offline", "offline")}${opt("pending", "needs approval")}${opt("expiring", "expiring soon (7 days)")}${opt("expired", "expired")}</select></label>
<button type="submit" class="secondary">Filter</button></form>`;
  const rows = page.rows
    .map((n) => {
      const fqdn = `${n.given_name}.${domain}`;
      const approval = n.approved ? "" : `<span class="badge warn">needs approval</span>`;
      const exp = expiryText(n, now);
      const expBadge = exp === "expired" ? "bad" : exp.startsWith("expires") ? "" : "ok";
      return `<tr>
<td data-label="Machine"><a href="/admin/machines/${n.id}">${esc(n.given_name)}</a><br><span class="muted">${esc(fqdn)}</span></td>
<td data-label="Addresses">${esc(n.ipv4)}<br><span class="muted">${esc(n.ipv6)}</span></td>
<td data-label="Owner or tags">${ownerCell(n)}</td>
<td data-label="OS">${osCell(n)}</td>
<td data-label="Status">${statusCell(n, now)} ${approval}</td>
<td data-label="Key expiry"><span class="badge ${expBadge}">${esc(exp)}</span></td>
<td data-label="Routes">${routesCell(n)}</td>
<td data-label="Connection">${esc(connCell(n))}</td>
<td data-label="Actions" class="actions">${n.approved ? "" : actionButton(v, `/admin/machines/${n.id}/approve`, "Approve")}<a href="/admin/machines/${n.id}">Details</a></td>
</tr>`;
    })
    .join("\n");
  const pages = Math.max(1, Math.ceil(page.total / MACHINES_PAGE));
  const link = (p: number) => {
    const u = new URLSearchParams({ q: f.q, user: f.user, tag: f.tag, status: f.status, page: String(p) });
    return `/admin/machines?${u}`;
  };
  const pager = `<nav class="pager" aria-label="Pages"><span class="muted">${page.total} machine${page.total === 1 ? "" : "s"}, page ${f.page} of ${pages}</span>${f.page > 1 ? `<a href="${esc(link(f.page - 1))}">Previous page</a>` : ""}${f.page < pages ? `<a href="${esc(link(f.page + 1))}">Next page</a>` : ""}</nav>`;
  return `${filters}${pager}<table><caption class="sr-only">Machines</caption><thead><tr><th scope="col">Machine</th><th scope="col">Addresses</th><th scope="col">Owner or tags</th><th scope="col">OS</th><th scope="col">Status</th><th scope="col">Key expiry</th><th scope="col">Routes</th><th scope="col">Connection</th><th scope="col">Actions</th></tr></thead>
<tbody>${rows || `<tr><td colspan="9">No machines match.</td></tr>`}</tbody></table>${pager}`;
}

/** What the policy lets a node reach and be reached from (its compiled view). */
export interface ReachFacts {
  /** Peers this node may reach (names). */
  canReach: string[];
  /** Peers that may reach it (names). */
  reachableFrom: string[];
  /** Why nothing is known (not approved, policy error). */
  note: string | null;
}

/** The machine detail page body. */
export function machineBody(v: Viewer, n: Row, domain: string, now: number, reach: ReachFacts): string {
  const hi = parseJson<Record<string, unknown>>(n.hostinfo, {});
  const tags = parseJson<string[]>(n.tags, []);
  const endpoints = parseJson<string[]>(n.endpoints, []);
  const sshKeys = Array.isArray(hi.sshHostKeys) ? (hi.sshHostKeys as unknown[]).filter((k): k is string => typeof k === "string") : [];
  const adv = Array.isArray(hi.RoutableIPs) ? (hi.RoutableIPs as unknown[]).filter((k): k is string => typeof k === "string") : [];
  const approved = parseJson<string[]>(n.approved_routes, []);
  const base = `/admin/machines/${n.id}`;
  const list = (xs: string[]) => (xs.length ? `<ul>${xs.map((x) => `<li><code>${esc(x)}</code></li>`).join("")}</ul>` : "—");
  const facts = `<section class="card" aria-labelledby="facts-h"><h2 id="facts-h">Machine</h2><dl class="facts">
<dt>Name</dt><dd>${esc(n.given_name)} <span class="muted">(hostname ${esc(n.hostname)})</span></dd>
<dt>FQDN</dt><dd>${esc(`${n.given_name}.${domain}`)}</dd>
<dt>Tailnet IPv4</dt><dd>${esc(n.ipv4)}</dd>
<dt>Tailnet IPv6</dt><dd>${esc(n.ipv6)}</dd>
<dt>Owner or tags</dt><dd>${ownerCell(n)}</dd>
<dt>OS</dt><dd>${osCell(n)}</dd>
<dt>Status</dt><dd>${statusCell(n, now)}</dd>
<dt>Approval</dt><dd>${n.approved ? "approved" : `<span class="badge warn">needs approval</span>`}</dd>
<dt>Key expiry</dt><dd><span class="key-expiry">${esc(expiryText(n, now))}</span>${effectiveExpiry(n) != null ? ` (${timeCell(effectiveExpiry(n), now)})` : ""}</dd>
<dt>Ephemeral</dt><dd>${n.ephemeral ? "yes" : "no"}</dd>
<dt>Endpoints</dt><dd>${list(endpoints)}</dd>
<dt>DERP home</dt><dd>${n.home_derp ? `region ${n.home_derp}` : "—"}</dd>
<dt>Advertised routes</dt><dd>${list(adv)}</dd>
<dt>Approved routes</dt><dd>${list(approved)}</dd>
<dt>SSH host keys</dt><dd>${list(sshKeys)}</dd>
<dt>Machine key</dt><dd><code>${esc(n.machine_key)}</code></dd>
<dt>Node key</dt><dd><code>${esc(n.node_key)}</code></dd>
<dt>Created</dt><dd>${timeCell(n.created_at, now)}</dd>
</dl></section>`;
  const reachHtml = `<section class="card" aria-labelledby="reach-h"><h2 id="reach-h">Access</h2>${
    reach.note
      ? `<p class="muted">${esc(reach.note)}</p>`
      : `<p>Can reach: ${reach.canReach.length ? reach.canReach.map((x) => `<span class="badge">${esc(x)}</span>`).join(" ") : "nothing"}</p><p>Reachable from: ${reach.reachableFrom.length ? reach.reachableFrom.map((x) => `<span class="badge">${esc(x)}</span>`).join(" ") : "nobody"}</p>`
  }</section>`;
  const hostinfo = `<section class="card" aria-labelledby="hi-h"><h2 id="hi-h">Hostinfo</h2><pre class="diff" tabindex="0">${esc(JSON.stringify(hi, null, 2))}</pre></section>`;
  if (!v.admin) return facts + reachHtml + hostinfo;
  const expiryForm = n.expiry_disabled
    ? actionButton(v, `${base}/enable-expiry`, "Enable key expiry")
    : actionButton(v, `${base}/disable-expiry`, "Disable key expiry");
  const routeBoxes = [...new Set([...adv.filter((r) => !EXIT.includes(r)), ...approved.filter((r) => !EXIT.includes(r))])]
    .map((r, i) => `<label class="check"><input type="checkbox" name="route" value="${esc(r)}" id="route-${i}"${approved.includes(r) ? " checked" : ""}> ${esc(r)}</label>`)
    .join("");
  const exitBox =
    adv.some((r) => EXIT.includes(r)) || approved.some((r) => EXIT.includes(r))
      ? `<label class="check"><input type="checkbox" name="route" value="0.0.0.0/0"${approved.some((r) => EXIT.includes(r)) ? " checked" : ""}> Use as exit node</label>`
      : "";
  const actions = `<section class="card" aria-labelledby="act-h"><h2 id="act-h">Manage</h2>
<div class="actions">${n.approved ? "" : actionButton(v, `${base}/approve`, "Approve")}${expiryForm}${actionButton(v, `${base}/expire`, "Expire key", { confirm: `Expire the key of ${n.given_name}? It must log in again.` })}</div>
<form class="inline" method="post" action="${base}/rename">${csrfField(v)}<label>Machine name<input name="name" value="${esc(n.given_name)}" required maxlength="63"></label><button type="submit">Rename</button></form>
<form class="inline" method="post" action="${base}/tags">${csrfField(v)}<label>Tags (comma-separated)<input name="tags" value="${esc(tags.join(", "))}" placeholder="tag:server"></label><button type="submit">Save tags</button></form>
${routeBoxes || exitBox ? `<form class="stack" method="post" action="${base}/routes">${csrfField(v)}<fieldset><legend>Approved routes</legend>${routeBoxes}${exitBox}</fieldset><button type="submit">Save routes</button></form>` : `<p class="muted">No routes advertised.</p>`}
<h2>Delete</h2>${actionButton(v, `${base}/delete`, "Delete machine", { danger: true, confirm: `Delete ${n.given_name}? It loses its addresses and must be registered again.` })}
</section>`;
  return facts + actions + reachHtml + hostinfo;
}
