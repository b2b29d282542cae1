/**
 * The Access controls page: the policy file in an editor with line numbers (a textarea
 * with a gutter the server renders, kept in step by the console script), errors at their
 * line and column without losing the edit, the "who can reach what" preview, and the
 * Tailscale-SSH rule form and list.
 *
 * SSH rules are added, replaced and deleted as text edits of the huJSON file
 * (jsonc-parser `modify`): everything else in the file — comments, order, formatting —
 * stays as written. A rule's Note becomes a `//` comment on the line above it.
 */
import { applyEdits, modify, parse, parseTree, type FormattingOptions, type ParseError } from "jsonc-parser";
import { ValidationError } from "../errors.js";
import { csrfField, esc, type Viewer } from "./layout.js";

/** An `ssh` rule as the form edits it. */
export interface SshRuleInput {
  src: string[];
  dst: string[];
  users: string[];
  /** Check mode (re-authentication) instead of accept. */
  check: boolean;
  /** Check period ("12h", "always"); only with check. */
  checkPeriod: string;
  /** Written as a `//` comment above the rule; "" for none. */
  note: string;
}

/** An `ssh` rule as found in the file (for the list and the edit form). */
export interface SshRuleShown {
  action: string;
  src: string[];
  dst: string[];
  users: string[];
  checkPeriod: string;
  note: string;
}

function list(f: URLSearchParams, name: string, label: string): string[] {
  const xs = (f.get(name) ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  if (xs.length === 0) throw new ValidationError(`${label}: must name at least one entry (comma-separated)`);
  if (xs.length > 100) throw new ValidationError(`${label}: at most 100 entries`);
  return xs;
}

/**
 * Reads the SSH rule form (fields src, dst, users, check, checkPeriod, note).
 * @throws {ValidationError} naming the field.
 */
export function readSshForm(f: URLSearchParams): SshRuleInput {
  const check = f.get("check") === "1";
  const period = (f.get("checkPeriod") ?? "").trim();
  if (check && period !== "" && period !== "always" && !/^\d+(s|m|h|d)$/.test(period)) {
    throw new ValidationError(`check period: ${JSON.stringify(period)} is not a duration (e.g. 12h, 7d) or "always"`);
  }
  const note = (f.get("note") ?? "").replace(/[\r\n]+/g, " ").trim();
  if (note.length > 200) throw new ValidationError("note: at most 200 characters");
  return { src: list(f, "src", "source"), dst: list(f, "dst", "destination"), users: list(f, "users", "as destination user"), check, checkPeriod: check ? period : "", note };
}

function ruleValue(r: SshRuleInput): Record<string, unknown> {
  return { action: r.check ? "check" : "accept", src: r.src, dst: r.dst, users: r.users, ...(r.check && r.checkPeriod ? { checkPeriod: r.checkPeriod } : {}) };
}

/** The indentation the file uses (2 unless it is clearly tabs or 4 spaces). */
function formatting(text: string): FormattingOptions {
  if (/^\t/m.test(text)) return { insertSpaces: false, tabSize: 1, eol: "\n" };
  const m = /^( +)\S/m.exec(text);
  return { insertSpaces: true, tabSize: m && m[1]!.length === 4 ? 4 : 2, eol: "\n" };
}

function parseOrThrow(text: string): void {
  const errors: ParseError[] = [];
  parseTree(text, errors, { allowTrailingComma: true, disallowComments: false });
  if (errors.length > 0) throw new ValidationError("the policy file has a syntax error; fix it in the editor first");
}

/** Offset of `ssh[i]` in the text, or -1. */
function ruleOffset(text: string, i: number): number {
  const root = parseTree(text, [], { allowTrailingComma: true, disallowComments: false });
  const ssh = root?.children?.find((p) => p.children?.[0]?.value === "ssh")?.children?.[1];
  return ssh?.type === "array" ? (ssh.children?.[i]?.offset ?? -1) : -1;
}

/** Sets (or with "" removes) the `//` comment line directly above `ssh[i]`. */
function setNote(text: string, i: number, note: string): string {
  const off = ruleOffset(text, i);
  if (off < 0) return text;
  const lineStart = text.lastIndexOf("\n", off - 1) + 1;
  const indent = text.slice(lineStart, off);
  const ownLine = /^[ \t]*$/.test(indent);
  // An existing comment line right above is the rule's note.
  const prevEnd = lineStart - 1;
  const prevStart = prevEnd > 0 ? text.lastIndexOf("\n", prevEnd - 1) + 1 : -1;
  const prev = prevStart >= 0 ? text.slice(prevStart, prevEnd) : "";
  const hasNote = ownLine && /^[ \t]*\/\/.*$/.test(prev);
  const line = note ? `// ${note}` : "";
  if (hasNote) return note ? `${text.slice(0, prevStart)}${indent}${line}${text.slice(prevEnd)}` : `${text.slice(0, prevStart)}${text.slice(lineStart)}`;
  if (!note) return text;
  return ownLine ? `${text.slice(0, lineStart)}${indent}${line}\n${text.slice(lineStart)}` : `${text.slice(0, off)}${line}\n${text.slice(off)}`;
}

/**
 * Adds an `ssh` rule at the end of the `ssh` list (creating the list when missing), or
 * replaces `ssh[index]`; the rest of the file is kept as written.
 * @throws {ValidationError} when the file does not parse or `index` is not a rule.
 */
export function putSshRule(text: string, r: SshRuleInput, index?: number): string {
  parseOrThrow(text);
  const opts = { formattingOptions: formatting(text) };
  if (index === undefined) {
    const out = applyEdits(text, modify(text, ["ssh", -1], ruleValue(r), { ...opts, isArrayInsertion: true }));
    return setNote(out, sshRules(out).length - 1, r.note);
  }
  if (index < 0 || index >= sshRules(text).length) throw new ValidationError(`ssh rule ${index + 1} does not exist`);
  return setNote(applyEdits(text, modify(text, ["ssh", index], ruleValue(r), opts)), index, r.note);
}

/** Removes `ssh[index]` (and its note); the rest of the file is kept as written. */
export function deleteSshRule(text: string, index: number): string {
  parseOrThrow(text);
  if (index < 0 || index >= sshRules(text).length) throw new ValidationError(`ssh rule ${index + 1} does not exist`);
  return removeElement(setNote(text, index, ""), index);
}

/**
 * Removes `ssh[i]` and the separator that belongs to it, and its lines when it stands on
 * lines of its own. (jsonc-parser's removal would also take the comments between it and
 * the next rule — the next rule's note.)
 */
function removeElement(text: string, i: number): string {
  const root = parseTree(text, [], { allowTrailingComma: true, disallowComments: false });
  const arr = root?.children?.find((p) => p.children?.[0]?.value === "ssh")?.children?.[1];
  const items = arr?.children ?? [];
  const el = items[i]!;
  let start = el.offset;
  let end = el.offset + el.length;
  const comma = /^[ \t]*,/.exec(text.slice(end));
  let cut: [number, number] | null = null;
  if (comma) end += comma[0].length;
  else if (i > 0) {
    // The last rule without a trailing comma: the comma after the previous rule goes.
    const prevEnd = items[i - 1]!.offset + items[i - 1]!.length;
    const m = /^[ \t]*,/.exec(text.slice(prevEnd));
    if (m) cut = [prevEnd + m[0].length - 1, prevEnd + m[0].length];
  }
  const lineStart = text.lastIndexOf("\n", start - 1) + 1;
  const lineEnd = text.indexOf("\n", end);
  if (/^[ \t]*$/.test(text.slice(lineStart, start)) && /^[ \t]*$/.test(text.slice(end, lineEnd === -1 ? text.length : lineEnd))) {
    start = lineStart;
    end = lineEnd === -1 ? text.length : lineEnd + 1;
  }
  let out = text.slice(0, start) + text.slice(end);
  if (cut) out = out.slice(0, cut[0]) + out.slice(cut[1]);
  return out;
}

/** The `ssh` rules of a policy text as written ([] when it does not parse). */
export function sshRules(text: string): SshRuleShown[] {
  const v = parse(text, [], { allowTrailingComma: true, disallowComments: false }) as { ssh?: unknown } | undefined;
  if (!v || !Array.isArray(v.ssh)) return [];
  const strs = (x: unknown) => (Array.isArray(x) ? x.filter((s): s is string => typeof s === "string") : []);
  return v.ssh.map((r: Record<string, unknown>, i: number) => {
    const off = ruleOffset(text, i);
    const lineStart = off > 0 ? text.lastIndexOf("\n", off - 1) + 1 : 0;
    const prevStart = lineStart > 1 ? text.lastIndexOf("\n", lineStart - 2) + 1 : -1;
    const prev = prevStart >= 0 ? text.slice(prevStart, lineStart - 1) : "";
    const note = /^[ \t]*\/\/(.*)$/.exec(prev)?.[1]?.trim() ?? "";
    return { action: String(r?.action ?? ""), src: strs(r?.src), dst: strs(r?.dst), users: strs(r?.users), checkPeriod: typeof r?.checkPeriod === "string" ? r.checkPeriod : "", note };
  });
}

/** What the page shows. */
export interface AclPageFacts {
  text: string;
  version: number;
  error: { message: string; line: number; column: number } | null;
  /** The preview form's values and answer. */
  preview: { src: string; dst: string; result: { allowed: boolean; text: string } | null; error: string | null };
  sources: { value: string; label: string; group: string }[];
  /** The rule being edited in the SSH form (index), if any. */
  editing: number | null;
  sshError: string | null;
}

function sshForm(v: Viewer, f: AclPageFacts, rules: SshRuleShown[]): string {
  if (!v.admin) return "";
  const r = f.editing != null ? rules[f.editing] : undefined;
  const val = (xs: string[] | undefined, d: string) => esc(xs ? xs.join(", ") : d);
  const check = r ? r.action === "check" : false;
  return `<form class="stack card" id="ssh-form" method="post" action="/admin/acls/ssh">${csrfField(v)}
<h3>${r ? `Edit SSH rule ${f.editing! + 1}` : "Add Tailscale SSH rule"}</h3>${r ? `<input type="hidden" name="index" value="${f.editing}">` : ""}
${f.sshError ? `<p class="err" role="alert">${esc(f.sshError)}</p>` : ""}
<label for="ssh-src">Source</label><input id="ssh-src" name="src" required value="${val(r?.src, "autogroup:member")}" placeholder="group:devops, autogroup:member">
<label for="ssh-dst">Destination</label><input id="ssh-dst" name="dst" required value="${val(r?.dst, "autogroup:self")}" placeholder="tag:server, autogroup:self">
<label for="ssh-users">As destination user</label><input id="ssh-users" name="users" required value="${val(r?.users, "autogroup:nonroot")}" placeholder="root, autogroup:nonroot">
<label class="check"><input type="checkbox" id="ssh-check" name="check" value="1"${check ? " checked" : ""}> Check mode (re-authenticate in the browser)</label>
<label for="ssh-period">Check period</label><input id="ssh-period" name="checkPeriod" value="${esc(r?.checkPeriod || "12h")}" placeholder="12h, 7d or always">
<label for="ssh-note">Note</label><input id="ssh-note" name="note" maxlength="200" value="${esc(r?.note ?? "")}">
<p><button type="submit">${r ? "Save SSH rule" : "Add SSH rule"}</button>${r ? ` <a href="/admin/acls#ssh">Cancel</a>` : ""}</p></form>`;
}

/** The Access controls page body. */
export function aclBody(v: Viewer, f: AclPageFacts): string {
  const lines = f.text.split("\n").length;
  const gutter = Array.from({ length: lines }, (_, i) => (i + 1 === f.error?.line ? `<span class="bad">${i + 1}</span>` : String(i + 1))).join("\n");
  const err = f.error
    ? `<p class="err" id="policy-error" role="alert" data-line="${f.error.line}" data-column="${f.error.column}">${f.error.line > 0 ? `Line ${f.error.line}, column ${f.error.column}: ` : ""}${esc(f.error.message)}</p>`
    : "";
  const editor = `<section aria-labelledby="policy-h"><h2 id="policy-h">Policy file</h2>${err}
${v.admin ? `<form method="post" action="/admin/acls">${csrfField(v)}<input type="hidden" name="version" value="${f.version}">` : ""}
<div class="editor"><pre class="gutter" id="policy-gutter" aria-hidden="true" data-error-line="${f.error?.line ?? 0}">${gutter}</pre><textarea id="policy" name="policy" spellcheck="false" autocomplete="off" wrap="off" aria-label="Policy file (huJSON)"${f.error ? ' aria-describedby="policy-error" aria-invalid="true"' : ""}${v.admin ? "" : " readonly"}>${esc(f.text)}</textarea></div>
${v.admin ? `<p><button type="submit">Save</button> <span class="muted">Saving validates the file and runs its <code>tests</code> and <code>sshTests</code>.</span></p>` : `<p class="muted">Read-only: only admins can change the policy.</p>`}${v.admin ? "</form>" : ""}</section>`;
  const groups = [...new Set(f.sources.map((s) => s.group))];
  const select = groups
    .map((g) => `<optgroup label="${esc(g)}">${f.sources.filter((s) => s.group === g).map((s) => `<option value="${esc(s.value)}"${s.value === f.preview.src ? " selected" : ""}>${esc(s.label)}</option>`).join("")}</optgroup>`)
    .join("");
  const p = f.preview;
  const answer = p.error
    ? `<p class="err" id="preview-result" role="alert">${esc(p.error)}</p>`
    : p.result
      ? `<p class="${p.result.allowed ? "flash" : "err"}" id="preview-result" role="status">${esc(p.result.text)}</p>`
      : "";
  const preview = `<section class="card" aria-labelledby="preview-h"><h2 id="preview-h">Who can reach what</h2>
<form class="inline" method="get" action="/admin/acls#preview-h"><label>Source<select name="src">${select}</select></label>
<label>Destination (alias:port)<input name="dst" value="${esc(p.dst)}" placeholder="tag:server:22" required></label><button type="submit" class="secondary">Preview</button></form>${answer}
<p class="muted">Tests the saved policy, TCP.</p></section>`;
  const rules = sshRules(f.text);
  const rows = rules
    .map(
      (r, i) => `<tr><td data-label="#">${i + 1}</td><td data-label="Action">${esc(r.action)}${r.checkPeriod ? ` (${esc(r.checkPeriod)})` : ""}</td><td data-label="Source">${esc(r.src.join(", "))}</td>
<td data-label="Destination">${esc(r.dst.join(", "))}</td><td data-label="As user">${esc(r.users.join(", "))}</td><td data-label="Note">${esc(r.note || "—")}</td>
<td data-label="Actions" class="actions">${
        v.admin
          ? `<a href="/admin/acls?ssh=${i}#ssh-form">Edit</a> <form method="post" action="/admin/acls/ssh/${i}/delete" data-confirm="Delete SSH rule ${i + 1}?">${csrfField(v)}<button type="submit" class="danger">Delete</button></form>`
          : ""
      }</td></tr>`,
    )
    .join("\n");
  const ssh = `<section aria-labelledby="ssh"><h2 id="ssh">Tailscale SSH rules</h2><table><caption class="sr-only">SSH rules</caption><thead><tr><th scope="col">#</th><th scope="col">Action</th><th scope="col">Source</th><th scope="col">Destination</th><th scope="col">As user</th><th scope="col">Note</th><th scope="col">Actions</th></tr></thead><tbody>${rows || `<tr><td colspan="7">No SSH rules.</td></tr>`}</tbody></table>${sshForm(v, f, rules)}</section>`;
  return editor + preview + ssh;
}
