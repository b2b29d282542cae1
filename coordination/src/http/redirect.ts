/**
 * The one validator of post-login redirect targets (`next=` of `/login` and
 * `/oidc/login`, and the target carried through the OIDC flow).
 */

/**
 * Returns a same-origin path for `next`, or "/" when `next` is absent or could lead
 * anywhere else. Accepted: a path starting with exactly one "/" (not "//", not "/\"),
 * made of printable ASCII without backslashes, whitespace or control characters, that
 * resolved against `origin` (WHATWG URL parsing, as browsers do) stays on `origin`. The
 * answer is the resolved URL's path, query and fragment re-serialized, so what the
 * browser receives is exactly what was checked (e.g. `/%09/evil.example/x`, decoded to a
 * TAB by the query parser, `\\evil`, `/\evil`, `//evil`, `/.//evil`, `https://evil` → "/").
 */
export function safeRedirectPath(next: string | null | undefined, origin: string): string {
  if (!next || next.length > 2048) return "/";
  // Printable ASCII only: no TAB/CR/LF (stripped by URL parsers), no space, no backslash (read as "/").
  if (!/^\/[\x21-\x7e]*$/.test(next) || next.includes("\\") || next.startsWith("//")) return "/";
  let base: URL;
  let url: URL;
  try {
    base = new URL(origin);
    url = new URL(next, base);
  } catch {
    return "/";
  }
  if (url.origin !== base.origin || url.username !== "" || url.password !== "") return "/";
  const out = url.pathname + url.search + url.hash;
  // Dot-segment removal can turn "/.//x" into "//x", a protocol-relative reference.
  if (!out.startsWith("/") || out.startsWith("//") || out.includes("\\")) return "/";
  return out;
}
