/**
 * The SSH check approval page `/ssh/check/<id>` (check mode, issue 9): the person who is
 * connecting logs in (local account or OIDC, the same session as the other pages) and
 * sees "alice@example.com on laptop wants to SSH as root to server1", with Approve and
 * Deny buttons — plain HTML forms with the session's CSRF token, no JavaScript. Only the
 * source node's owner may see or decide it (403 for everyone else). Decisions go to
 * services/ssh-checks.ts, which wakes the destination node's wait.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Control } from "../app.js";
import { ControlError } from "../errors.js";
import { humanDuration } from "./confirm-page.js";

/** What the page needs from the web handler (web.ts). */
export interface PageKit {
  esc(s: string): string;
  page(title: string, body: string): string;
  send(res: ServerResponse, status: number, html: string): void;
  redirect(res: ServerResponse, to: string): void;
  form(req: IncomingMessage): Promise<URLSearchParams>;
  /** The logged-in session of the request, or null. */
  session(req: IncomingMessage): Promise<{ id: string; user: { id: number } } | null>;
}

const PATH = /^\/ssh\/check\/([^/]{1,128})$/;

/** Builds the page handler; it returns false when the path is not `/ssh/check/<id>`. */
export function createSshCheckPage(c: Control, k: PageKit) {
  const { esc } = k;
  const TITLE = "Approve SSH session";
  const fail = (res: ServerResponse, e: unknown): boolean => {
    if (!(e instanceof ControlError)) throw e;
    k.send(res, e.status, k.page(TITLE, `<p class="err">${esc(e.message)}</p>`));
    return true;
  };

  return async (req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> => {
    const m = PATH.exec(path);
    if (!m || (req.method !== "GET" && req.method !== "POST")) return false;
    const id = m[1]!;
    const session = await k.session(req);
    if (!session) {
      if (req.method === "POST") req.resume();
      k.redirect(res, `/login?next=${encodeURIComponent(path)}`);
      return true;
    }
    let v;
    try {
      v = await c.sshChecks.view(id);
    } catch (e) {
      if (req.method === "POST") req.resume();
      return fail(res, e);
    }
    if (v.row.user_id !== session.user.id) {
      if (req.method === "POST") req.resume();
      k.send(res, 403, k.page(TITLE, `<p class="err">This SSH session is waiting for <b>${esc(v.user)}</b>, not you. Log out and log in as ${esc(v.user)} to approve it.</p>`));
      return true;
    }
    const token = c.sessions.sign(`csrf:${session.id}`);
    const who = `<b>${esc(v.user)}</b> on <b>${esc(v.srcName)}</b> wants to SSH as <b>${esc(v.row.local_user)}</b> to <b>${esc(v.dstName)}</b>`;
    if (req.method === "GET") {
      if (v.state !== "pending") {
        const what =
          v.state === "approved" ? "was approved; the session continues" : v.state === "denied" ? "was denied" : "has expired; connect again to get a new link";
        k.send(res, v.state === "expired" ? 410 : 200, k.page(TITLE, `<div class="box"><p>${who}.</p><p>This check ${esc(what)}.</p></div>`));
        return true;
      }
      const period = v.row.check_period > 0 ? `Approving lets you connect this way again for <b>${esc(humanDuration(v.row.check_period))}</b> without asking.` : "Every connection this way is checked.";
      const left = Math.max(0, v.row.expires_at - c.ctx.now());
      const button = (decision: string, label: string) =>
        `<form method="post" action="${esc(path)}" style="display:inline"><input type="hidden" name="csrf" value="${esc(token)}"><input type="hidden" name="decision" value="${decision}"><button type="submit" name="submit" value="${decision}">${label}</button></form> `;
      k.send(
        res,
        200,
        k.page(
          TITLE,
          `<div class="box"><p>${who}.</p><p>${period}</p><p><small>This request expires in ${esc(humanDuration(left))}. If you did not just run ssh, deny it.</small></p>` +
            `${button("approve", "Approve")}${button("deny", "Deny")}</div>`,
        ),
      );
      return true;
    }
    const f = await k.form(req);
    if (!c.sessions.verify(`csrf:${session.id}`, f.get("csrf") ?? "")) {
      k.send(res, 403, k.page(TITLE, `<p class="err">Your form expired; reload the page and try again.</p>`));
      return true;
    }
    const decision = f.get("decision");
    if (decision !== "approve" && decision !== "deny") {
      k.send(res, 400, k.page(TITLE, `<p class="err">Form field decision must be "approve" or "deny" (got ${esc(JSON.stringify((decision ?? "").slice(0, 32)))}).</p>`));
      return true;
    }
    try {
      await c.sshChecks.decide(id, session.user.id, decision === "approve");
    } catch (e) {
      return fail(res, e);
    }
    const done = decision === "approve" ? "Approved. Your SSH session continues; you can close this page." : "Denied. The SSH session is refused.";
    k.send(res, 200, k.page(decision === "approve" ? "SSH session approved" : "SSH session denied", `<div class="box"><p>${who}.</p><p>${esc(done)}</p></div>`));
    return true;
  };
}
