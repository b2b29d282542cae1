/**
 * SSH check mode on the Noise channel (Tailscale's HoldAndDelegate endpoints):
 *
 * - `GET /machine/ssh/action/<srcNodeID>/to/<dstNodeID>?local_user=<user>` — the URL
 *   the policy compiler puts in `check` rules (packages/policy ssh.ts `SSH_CHECK_PATH`)
 *   after the destination's SSH server expanded `$SRC_NODE_ID`/`$DST_NODE_ID` (the
 *   numeric tailcfg `Node.ID`) and `$LOCAL_USER` (query-escaped).
 * - `GET /machine/ssh/check/<id>/wait` — long poll on a pending check.
 *
 * Both answer 200 with an SSHAction JSON object (lowerCamel fields, as tailcfg) or an
 * error `{"error", "code"}`: 400 malformed path/query, 403 when the machine is not the
 * destination node, 404 unknown check, 405 other methods, 413 a request body. The
 * decisions themselves are in services/ssh-checks.ts (behind the {@link NodeBackend}).
 */
import type { IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import type { MachineKeyString } from "@lattice/types";
import { ControlError } from "../errors.js";
import type { NodeBackend } from "./backend.js";
import { readBody, respondJson, type BodyBudget } from "./http.js";

const ACTION = /^\/machine\/ssh\/action\/([^/]*)\/to\/([^/]*)$/;
const WAIT = /^\/machine\/ssh\/check\/([^/]*)\/wait$/;
/** Node ids: positive decimal integers (tailcfg.NodeID), safe in a JS number. */
const NODE_ID = /^[1-9][0-9]{0,14}$/;
/** Check ids as issued (16 random bytes, base64url). */
const CHECK_ID = /^[A-Za-z0-9_-]{22}$/;
/** Longest accepted local user name (Linux allows 32; leave room for other systems). */
const MAX_LOCAL_USER = 256;

/** Whether `path` (without query) is one of the SSH check endpoints. */
export function isSshPath(path: string): boolean {
  return path.startsWith("/machine/ssh/");
}

function bad(message: string): ControlError {
  return new ControlError("bad_request", message, 400);
}

function nodeId(s: string, field: string): number {
  if (!NODE_ID.test(s)) throw bad(`${field} ${JSON.stringify(s.slice(0, 32))} is not a node id (a positive decimal number)`);
  return Number(s);
}

/** The `local_user` query parameter: present, 1–256 characters, no control characters, `/` or `:`. */
function localUser(query: string): string {
  const v = new URLSearchParams(query).getAll("local_user");
  if (v.length !== 1) throw bad("query parameter local_user must be given exactly once");
  const u = v[0]!;
  if (u.length === 0 || u.length > MAX_LOCAL_USER) throw bad(`local_user must be 1 to ${MAX_LOCAL_USER} characters (got ${u.length})`);
  // eslint-disable-next-line no-control-regex
  const at = u.search(/[\u0000-\u001f\u007f/:]/);
  if (at >= 0) throw bad(`local_user has a forbidden character at position ${at}`);
  return u;
}

/**
 * Serves one SSH check-mode request. `fail` answers errors (and counts them); the body
 * must be empty (GET).
 */
export function serveSsh(
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  machineKey: MachineKeyString,
  backend: NodeBackend,
  o: { budget: BodyBudget; fail: (e: unknown) => void },
): void {
  const full = String(headers[":path"] ?? "");
  const q = full.indexOf("?");
  const path = q >= 0 ? full.slice(0, q) : full;
  const query = q >= 0 ? full.slice(q + 1) : "";
  const action = ACTION.exec(path);
  const wait = action ? null : WAIT.exec(path);
  if ((!action && !wait) || (action && !backend.sshAction) || (wait && !backend.sshCheckWait)) {
    stream.resume();
    o.fail(new ControlError("not_found", `no such endpoint ${path.slice(0, 64)}`, 404));
    return;
  }
  if (headers[":method"] !== "GET") {
    stream.resume();
    o.fail(new ControlError("method_not_allowed", `${path.slice(0, 64)} requires GET`, 405));
    return;
  }
  const ac = new AbortController();
  stream.on("close", () => ac.abort());
  void (async () => {
    try {
      await readBody(stream, 0, o.budget);
      let answer;
      if (action) {
        const src = nodeId(action[1]!, "source node id");
        const dst = nodeId(action[2]!, "destination node id");
        answer = await backend.sshAction!(machineKey, src, dst, localUser(query));
      } else {
        const id = wait![1]!;
        if (!CHECK_ID.test(id)) throw new ControlError("ssh_check_not_found", `ssh_check ${JSON.stringify(id.slice(0, 32))} not found`, 404);
        answer = await backend.sshCheckWait!(machineKey, id, ac.signal);
      }
      respondJson(stream, 200, answer);
    } catch (e) {
      o.fail(e);
    }
  })();
}
