/** Bodies of the Users, Settings (auth keys, API keys), Logs and DNS pages. */
import type { ApiKeyView } from "../services/apikeys.js";
import type { AuditPage } from "../services/audit.js";
import type { AuthKeyView } from "../services/authkeys.js";
import { actionButton, csrfField, esc, timeCell, type Viewer } from "./layout.js";

/** A user row with what the Users page shows beside the account. */
export interface UserFacts {
  name: string;
  login: string;
  role: string;
  method: string;
  devices: number;
  lastSeen: number | null;
}

/** The Users page body. */
export function usersBody(v: Viewer, users: UserFacts[], now: number): string {
  const roleForm = (u: UserFacts) =>
    v.admin && u.role !== "owner"
      ? `<form class="inline" method="post" action="/admin/users/${encodeURIComponent(u.name)}/role">${csrfField(v)}<label><span class="sr-only">Role of ${esc(u.name)}</span><select name="role">${["admin", "member", "owner"]
          .map((r) => `<option${r === u.role ? " selected" : ""}>${r}</option>`)
          .join("")}</select></label><button type="submit" class="secondary">Change role</button></form>`
      : "";
  const rows = users
    .map(
      (u) => `<tr><td data-label="User">${esc(u.name)}<br><span class="muted">${esc(u.login)}</span></td><td data-label="Role"><span class="badge">${esc(u.role)}</span></td>
<td data-label="Login method">${esc(u.method)}</td><td data-label="Devices">${u.devices}</td><td data-label="Last seen">${timeCell(u.lastSeen, now, "never")}</td>
<td data-label="Actions" class="actions">${roleForm(u)}${
        u.role === "owner"
          ? ""
          : actionButton(v, `/admin/users/${encodeURIComponent(u.name)}/delete`, "Delete", {
              danger: true,
              confirm: u.devices > 0 ? `${u.name} still owns ${u.devices} device(s): delete or re-tag them first.` : `Delete ${u.name}? Their auth keys, API keys and sessions are deleted too.`,
            })
      }</td></tr>`,
    )
    .join("\n");
  const create = v.admin
    ? `<section class="card" aria-labelledby="new-user-h"><h2 id="new-user-h">Create a local user</h2><form class="stack" method="post" action="/admin/users">${csrfField(v)}
<label for="nu-name">User name</label><input id="nu-name" name="name" required maxlength="63" autocomplete="off">
<label for="nu-email">E-mail (login name policies use; optional)</label><input id="nu-email" name="email" type="email" autocomplete="off">
<label for="nu-password">Password (optional: without one the user signs in through OIDC)</label><input id="nu-password" name="password" type="password" autocomplete="new-password">
<label for="nu-role">Role</label><select id="nu-role" name="role"><option>member</option><option>admin</option></select>
<p><button type="submit">Create user</button></p></form>
<p class="muted">Deleting a user: a user who still owns devices cannot be deleted (delete or re-tag the devices first); their auth keys, API keys and sessions go with them.</p></section>`
    : "";
  return `${create}<table><caption class="sr-only">Users</caption><thead><tr><th scope="col">User</th><th scope="col">Role</th><th scope="col">Login method</th><th scope="col">Devices</th><th scope="col">Last seen</th><th scope="col">Actions</th></tr></thead><tbody>${rows}</tbody></table>`;
}

function keyFlags(k: AuthKeyView): string {
  return (
    [k.reusable && "reusable", k.ephemeral && "ephemeral", k.preapproved && "pre-approved", k.revoked && "revoked"]
      .filter(Boolean)
      .map((f) => `<span class="badge${f === "revoked" ? " bad" : ""}">${f}</span>`)
      .join(" ") || "—"
  );
}

/** A just-created secret, shown once with a copy button. */
export function secretOnce(label: string, secret: string, id: string): string {
  return `<section class="card" aria-labelledby="${id}-h"><h2 id="${id}-h">${esc(label)}</h2><p>Copy it now: it is shown only once and cannot be shown again.</p>
<label for="${id}" class="sr-only">${esc(label)}</label><input id="${id}" class="secret" readonly value="${esc(secret)}">
<p><button type="button" class="secondary" data-copy="${id}" hidden>Copy</button></p></section>`;
}

/** The Settings page body: auth keys and API keys. */
export function settingsBody(v: Viewer, keys: AuthKeyView[], apiKeys: ApiKeyView[], users: string[], now: number, created: string): string {
  const keyRows = keys
    .map(
      (k) => `<tr><td data-label="Prefix"><code>${esc(k.prefix)}</code></td><td data-label="User or tags">${k.tags.length ? k.tags.map((t) => `<span class="badge">${esc(t)}</span>`).join(" ") : esc(k.user ?? "—")}</td>
<td data-label="Creator">${esc(k.createdBy ?? "—")}</td><td data-label="Flags">${keyFlags(k)}</td><td data-label="Created">${timeCell(Date.parse(k.createdAt), now)}</td><td data-label="Expires">${timeCell(Date.parse(k.expiresAt), now)}</td><td data-label="Uses">${k.used}</td>
<td data-label="Actions" class="actions">${k.revoked ? "" : actionButton(v, `/admin/settings/keys/${k.id}/revoke`, "Revoke", { danger: true, confirm: `Revoke key ${k.prefix}?` })}</td></tr>`,
    )
    .join("\n");
  const apiRows = apiKeys
    .map(
      (k) => `<tr><td data-label="Prefix"><code>${esc(k.prefix)}</code></td><td data-label="Description">${esc(k.description ?? "—")}</td><td data-label="User">${esc(k.user ?? "admin key")}</td>
<td data-label="Created">${timeCell(Date.parse(k.createdAt), now)}</td><td data-label="Expires">${timeCell(Date.parse(k.expiresAt), now)}</td><td data-label="State">${k.revoked ? `<span class="badge bad">revoked</span>` : "active"}</td>
<td data-label="Actions" class="actions">${k.revoked ? "" : actionButton(v, `/admin/settings/apikeys/${k.id}/revoke`, "Revoke", { danger: true, confirm: `Revoke API key ${k.prefix}?` })}</td></tr>`,
    )
    .join("\n");
  const keyForm = v.admin
    ? `<form class="stack card" method="post" action="/admin/settings/keys">${csrfField(v)}<h3>Generate auth key</h3>
<label class="check"><input type="checkbox" name="reusable" value="1"> Reusable (registers several machines)</label>
<label class="check"><input type="checkbox" name="ephemeral" value="1"> Ephemeral (machines are removed when offline)</label>
<label class="check"><input type="checkbox" name="preapproved" value="1"> Pre-approved (machines need no approval)</label>
<label for="k-tags">Tags (comma-separated; the machines become tagged)</label><input id="k-tags" name="tags" placeholder="tag:server">
<label for="k-user">User (owner of the machines, when not tagged)</label><select id="k-user" name="user"><option value="">— none (tagged) —</option>${users.map((u) => `<option>${esc(u)}</option>`).join("")}</select>
<label for="k-expiry">Expiration (days, 1–90)</label><input id="k-expiry" name="expiryDays" type="number" min="1" max="90" value="90" required>
<p><button type="submit">Generate key</button></p></form>`
    : "";
  const apiForm = v.admin
    ? `<form class="stack card" method="post" action="/admin/settings/apikeys">${csrfField(v)}<h3>Generate API key</h3>
<label for="a-desc">Description</label><input id="a-desc" name="description" maxlength="200">
<label for="a-expiry">Expiration (days, 1–365)</label><input id="a-expiry" name="expiryDays" type="number" min="1" max="365" value="90" required>
<p><button type="submit">Generate API key</button></p></form>`
    : "";
  return `${created}<h2 id="keys">Auth keys</h2>${keyForm}<table><caption class="sr-only">Auth keys</caption><thead><tr><th scope="col">Prefix</th><th scope="col">User or tags</th><th scope="col">Creator</th><th scope="col">Flags</th><th scope="col">Created</th><th scope="col">Expires</th><th scope="col">Uses</th><th scope="col">Actions</th></tr></thead><tbody>${keyRows || `<tr><td colspan="8">No auth keys.</td></tr>`}</tbody></table>
<h2 id="apikeys">API keys</h2>${apiForm}<table><caption class="sr-only">API keys</caption><thead><tr><th scope="col">Prefix</th><th scope="col">Description</th><th scope="col">User</th><th scope="col">Created</th><th scope="col">Expires</th><th scope="col">State</th><th scope="col">Actions</th></tr></thead><tbody>${apiRows || `<tr><td colspan="7">No API keys.</td></tr>`}</tbody></table>`;
}

/** The Logs page body (audit log, newest first). */
export function logsBody(page: AuditPage, now: number): string {
  const rows = page.entries
    .map((e) => {
      const { diff, ...rest } = e.details as { diff?: unknown };
      const extra = Object.keys(rest).length ? `<br><span class="muted">${esc(JSON.stringify(rest))}</span>` : "";
      const diffHtml = typeof diff === "string" && diff ? `<details><summary>Policy diff</summary><pre class="diff" tabindex="0">${esc(diff)}</pre></details>` : "";
      return `<tr><td data-label="When">${timeCell(Date.parse(e.at), now)}</td><td data-label="Who">${esc(e.actor)}</td><td data-label="Action"><code>${esc(e.action)}</code></td><td data-label="Target">${esc(e.target)}${extra}${diffHtml}</td><td data-label="From">${esc(e.source)}</td></tr>`;
    })
    .join("\n");
  const more = page.next != null ? `<nav class="pager" aria-label="Pages"><a href="/admin/logs?before=${page.next}">Older entries</a></nav>` : "";
  return `<p class="muted">Every administrative change (console, REST API, admin CLI). Export: <code>lattice-control audit --json</code>.</p><table><caption class="sr-only">Audit log</caption><thead><tr><th scope="col">When</th><th scope="col">Who</th><th scope="col">Action</th><th scope="col">Target</th><th scope="col">From</th></tr></thead><tbody>${rows || `<tr><td colspan="5">No changes recorded yet.</td></tr>`}</tbody></table>${more}`;
}

/** The DNS page body (read-only). */
export function dnsBody(domain: string): string {
  return `<section class="card"><dl class="facts"><dt>Tailnet domain</dt><dd>${esc(domain)}</dd><dt>MagicDNS</dt><dd>machine names are <code>&lt;name&gt;.${esc(domain)}</code></dd></dl>
<p class="muted">Read-only: the tailnet domain is set with <code>--tailnet-domain</code>. Nameservers, split DNS and search paths come with the DNS settings.</p></section>`;
}
