/** The console's SSH rule edits are text edits of the huJSON policy: everything else stays as written. */
import { describe, expect, it } from "vitest";
import { parsePolicy } from "@lattice/policy";
import { deleteSshRule, putSshRule, readSshForm, sshRules } from "../src/console/acl.js";

const BASE = `// my policy
{
  // who owns what
  "tagOwners": { "tag:server": ["alice@"] },
  "acls": [
    { "action": "accept", "src": ["*"], "dst": ["*:*"] }, // everything
  ],
}
`;

const form = (o: Record<string, string>) => readSshForm(new URLSearchParams({ src: "alice@", dst: "tag:server", users: "root", ...o }));

describe("console SSH rules", () => {
  it("adds an ssh list with the rule, its note as a comment, keeping the file's comments", () => {
    const out = putSshRule(BASE, form({ check: "1", checkPeriod: "12h", note: "break glass" }));
    expect(out.startsWith(BASE.slice(0, BASE.indexOf("],") + 2))).toBe(true);
    expect(out).toContain("// who owns what");
    expect(out).toContain("// everything");
    expect(out).toMatch(/\/\/ break glass\n\s+\{\n\s+"action": "check"/);
    const p = parsePolicy(out);
    expect(p.ssh).toHaveLength(1);
    expect(p.ssh![0]).toMatchObject({ action: "check", users: ["root"], checkPeriod: 12 * 3600 });
    expect(sshRules(out)).toEqual([{ action: "check", src: ["alice@"], dst: ["tag:server"], users: ["root"], checkPeriod: "12h", note: "break glass" }]);
  });

  it("appends to an existing list, edits a rule and its note, deletes it with its note", () => {
    const one = putSshRule(BASE, form({ note: "first" }));
    const two = putSshRule(one, form({ users: "autogroup:nonroot", note: "second" }));
    expect(sshRules(two).map((r) => r.note)).toEqual(["first", "second"]);
    const edited = putSshRule(two, form({ users: "ubuntu", note: "first, edited" }), 0);
    expect(sshRules(edited)[0]).toMatchObject({ users: ["ubuntu"], note: "first, edited" });
    expect(edited).not.toContain("// first\n");
    const deleted = deleteSshRule(edited, 0);
    expect(sshRules(deleted).map((r) => r.note)).toEqual(["second"]);
    expect(deleted).not.toContain("first, edited");
    expect(deleted).toContain("// everything");
    expect(() => parsePolicy(deleted)).not.toThrow();
    // The last rule: the previous rule keeps its note, the file stays valid.
    const lastGone = deleteSshRule(two, 1);
    expect(sshRules(lastGone).map((r) => r.note)).toEqual(["first"]);
    expect(() => parsePolicy(lastGone)).not.toThrow();
    expect(sshRules(deleteSshRule(lastGone, 0))).toEqual([]);
    expect(() => parsePolicy(deleteSshRule(lastGone, 0))).not.toThrow();
  });

  it("refuses bad form input and edits of a file that does not parse, naming the field", () => {
    expect(() => readSshForm(new URLSearchParams({ src: "", dst: "x", users: "root" }))).toThrow("source: must name at least one entry");
    expect(() => form({ check: "1", checkPeriod: "soon" })).toThrow(`check period: "soon" is not a duration`);
    expect(() => putSshRule("{ broken", form({}))).toThrow("syntax error");
    expect(() => deleteSshRule(BASE, 0)).toThrow("ssh rule 1 does not exist");
  });
});
