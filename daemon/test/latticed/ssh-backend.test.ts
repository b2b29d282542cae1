// latticed's SshBackend over the netmap: identity is the peer holding the source address
// (never this node itself: a local process reaching the internal port), tagged peers have
// no user, check URLs are fetched by path over the control channel only.
import { describe, expect, it } from "vitest";
import type { MapResponse, Node } from "@lattice/types";
import { Netmap } from "../../src/latticed/netmap.js";
import { NetmapSshBackend } from "../../src/latticed/ssh.js";

const key = (n: number) => `nodekey:${n.toString(16).padStart(64, "0")}` as Node["Key"];
function node(id: number, extra: Partial<Node> = {}): Node {
  return { ID: id, StableID: `n${id}`, Name: `h${id}.t.example.`, User: 1, Key: key(id), Addresses: [`100.64.0.${id}/32`, `fd7a:115c:a1e0::${id}/128`], AllowedIPs: [`100.64.0.${id}/32`], ...extra };
}
const pol = { rules: [{ principals: [{ any: true }], sshUsers: { root: "root" }, action: { accept: true } }] };
const full = { Node: node(1), Peers: [node(2), node(3, { Tags: ["tag:ci"], User: 9 }), node(4, { Expired: true })], UserProfiles: [{ ID: 1, LoginName: "alice@", DisplayName: "A" }], SSHPolicy: pol } as unknown as MapResponse;

describe("NetmapSshBackend", () => {
  it("whois: the peer holding the IP (v4 or v6) with its user; tagged → user null; expired, unknown and our own addresses → undefined", () => {
    const nm = Netmap.fromFull(full, 0)!;
    const b = new NetmapSshBackend(() => nm, () => Promise.reject(new Error("unused")));
    expect(b.whois("100.64.0.2")).toMatchObject({ node: { ID: 2 }, user: { LoginName: "alice@" } });
    expect(b.whois("fd7a:115c:a1e0::2")?.node.ID).toBe(2);
    expect(b.whois("100.64.0.3")).toMatchObject({ node: { ID: 3 }, user: null });
    expect(b.whois("100.64.0.4")).toBeUndefined();
    expect(b.whois("100.64.0.99")).toBeUndefined();
    expect(b.whois("100.64.0.1")).toBeUndefined();
    expect(b.self()?.node.ID).toBe(1);
    expect(b.sshPolicy()).toEqual(pol);
    expect(new NetmapSshBackend(() => null, () => Promise.reject(new Error("unused"))).whois("100.64.0.2")).toBeUndefined();
  });

  it("onPolicyChange subscribers run on changed() until unsubscribed", () => {
    const b = new NetmapSshBackend(() => null, () => Promise.reject(new Error("unused")));
    let n = 0;
    const off = b.onPolicyChange(() => n++);
    b.changed();
    off();
    b.changed();
    expect(n).toBe(1);
  });

  it("fetchCheck GETs the URL's path (host ignored) and parses the SSHAction; non-200 and non-objects reject", async () => {
    const asked: string[] = [];
    let answer = { status: 200, body: JSON.stringify({ accept: true }) };
    const b = new NetmapSshBackend(() => null, async (p) => {
      asked.push(p);
      return answer;
    });
    const sig = new AbortController().signal;
    expect(await b.fetchCheck("https://evil.example/machine/ssh/action/1/to/2?x=1", sig)).toEqual({ accept: true });
    expect(asked).toEqual(["/machine/ssh/action/1/to/2?x=1"]);
    answer = { status: 404, body: "{}" };
    await expect(b.fetchCheck("https://c/x", sig)).rejects.toThrow(/HTTP 404/);
    answer = { status: 200, body: "[1]" };
    await expect(b.fetchCheck("https://c/x", sig)).rejects.toThrow(/not an SSHAction/);
    await expect(b.fetchCheck("not a url", sig)).rejects.toThrow(/not a URL/);
  });
});
