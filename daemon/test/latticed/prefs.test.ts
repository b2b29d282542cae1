import { describe, expect, it } from "vitest";
import { applyPatch, defaultPrefs, loadPrefs, parsePrefsPatch, parseUpRequest, prefsForUp } from "../../src/latticed/prefs.js";

describe("prefs", () => {
  it("a PATCH changes only the fields given", () => {
    const p = { ...defaultPrefs(), Hostname: "web", RunSSH: true };
    const next = applyPatch(p, parsePrefsPatch({ RouteAll: true }));
    expect(next).toEqual({ ...p, RouteAll: true });
  });

  it("a bad PATCH value is refused naming field and value", () => {
    expect(() => parsePrefsPatch({ WantRunning: "yes" })).toThrowError(/WantRunning: must be true or false \(got "yes"\)/);
    expect(() => parsePrefsPatch({ AdvertiseTags: ["tag:ok", "nope"] })).toThrowError(/AdvertiseTags\[1\]/);
    expect(() => parsePrefsPatch({ Hostname: "bad name" })).toThrowError(/Hostname/);
    expect(() => parsePrefsPatch({ ControlURL: "ftp://x" })).toThrowError(/ControlURL: must be an http/);
    expect(() => parsePrefsPatch({ Frobnicate: 1 })).toThrowError(/Frobnicate: unknown Prefs field/);
    expect(() => parsePrefsPatch({ Ephemeral: true })).toThrowError(/Ephemeral: is read-only/);
    expect(() => parsePrefsPatch([1])).toThrowError(/body: must be a JSON object/);
  });

  it("up sets WantRunning and the given fields; Reset returns the others to defaults", () => {
    const p = { ...defaultPrefs(), ControlURL: "http://c", Hostname: "web", RunSSH: true };
    expect(prefsForUp(p, parseUpRequest({ RouteAll: true }))).toEqual({ ...p, RouteAll: true, WantRunning: true });
    expect(prefsForUp(p, parseUpRequest({ RouteAll: true, Reset: true }))).toEqual({ ...defaultPrefs(), ControlURL: "http://c", RouteAll: true, WantRunning: true });
  });

  it("an UpRequest with an unknown or mistyped field is refused", () => {
    expect(() => parseUpRequest({ AuthKey: 5 })).toThrowError(/AuthKey/);
    expect(() => parseUpRequest({ authkey: "x" })).toThrowError(/authkey: unknown UpRequest field/);
    expect(parseUpRequest({ ControlURL: "http://h:8080/" }).ControlURL).toBe("http://h:8080");
  });

  it("stored prefs load tolerantly: a bad field falls back to its default", () => {
    expect(loadPrefs({ Hostname: 7, RunSSH: true, Ephemeral: true })).toEqual({ ...defaultPrefs(), RunSSH: true, Ephemeral: true });
    expect(loadPrefs(null)).toEqual(defaultPrefs());
  });
});
