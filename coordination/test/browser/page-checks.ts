/**
 * Checks run on every console page in real Chromium: screenshots at desktop and phone
 * sizes (saved as artifacts), no element overflowing its container, and axe-core with no
 * serious or critical violations.
 */
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Page } from "playwright-core";

const here = fileURLToPath(new URL(".", import.meta.url));
/** Where screenshots go (gitignored). */
export const ARTIFACTS = resolve(here, "../../test-artifacts/console");

/** The two viewports of the issue's acceptance 2. */
export const VIEWPORTS = [
  { name: "desktop", width: 1280, height: 900 },
  { name: "phone", width: 390, height: 844 },
] as const;

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

/**
 * Elements whose content spills out of them or out of their parent. Containers that clip
 * or scroll on purpose (overflow auto/scroll/hidden/clip: the policy editor, diffs,
 * screen-reader-only text) are boundaries: what is inside them is theirs to scroll.
 * The document itself must not scroll sideways.
 */
export async function overflowProblems(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const out: string[] = [];
    const name = (el: Element) => `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ""}${el.className && typeof el.className === "string" ? `.${el.className.split(" ").join(".")}` : ""} "${(el.textContent ?? "").trim().slice(0, 40)}"`;
    const de = document.documentElement;
    if (de.scrollWidth > de.clientWidth + 1) out.push(`document scrolls sideways: scrollWidth ${de.scrollWidth} > clientWidth ${de.clientWidth}`);
    const clips = (el: Element) => ["auto", "scroll", "hidden", "clip"].includes(getComputedStyle(el).overflowX);
    const insideClip = (el: Element) => {
      for (let p = el.parentElement; p; p = p.parentElement) if (clips(p)) return true;
      return false;
    };
    for (const el of Array.from(document.body.querySelectorAll("*"))) {
      const cs = getComputedStyle(el);
      if (cs.display === "none" || cs.visibility === "hidden" || insideClip(el)) continue;
      if (!clips(el) && el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1) out.push(`${name(el)}: content ${el.scrollWidth}px wide in ${el.clientWidth}px`);
      const parent = el.parentElement;
      if (parent && parent !== document.body) {
        const r = el.getBoundingClientRect();
        const pr = parent.getBoundingClientRect();
        if (r.width > 0 && (r.right > pr.right + 1 || r.left < pr.left - 1)) out.push(`${name(el)}: sticks out of its parent ${name(parent)} (${Math.round(r.left)}..${Math.round(r.right)} vs ${Math.round(pr.left)}..${Math.round(pr.right)})`);
      }
    }
    return out;
  });
}

/** axe-core violations of impact serious or critical ("id: help (n nodes: …)"). */
export async function axeProblems(page: Page): Promise<string[]> {
  // Evaluated through the DevTools protocol: the page's CSP (no inline scripts) stays on.
  await page.evaluate(AXE_SOURCE);
  const violations = await page.evaluate(async () => {
    const r = await (window as any).axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v: any) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n: any) => n.target.join(" ")).slice(0, 5) }));
  });
  return violations.filter((v: any) => v.impact === "serious" || v.impact === "critical").map((v: any) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.join(", ")}`);
}

/**
 * Screenshots `page` (already at its URL) at both viewports as `<name>-<viewport>.png`
 * and returns every overflow and accessibility problem found, prefixed with page and size.
 */
export async function checkPage(page: Page, name: string): Promise<string[]> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const problems: string[] = [];
  for (const vp of VIEWPORTS) {
    await page.setViewportSize({ width: vp.width, height: vp.height });
    await page.screenshot({ path: join(ARTIFACTS, `${name}-${vp.name}.png`), fullPage: true });
    for (const p of await overflowProblems(page)) problems.push(`${name} @${vp.name}: overflow: ${p}`);
    for (const p of await axeProblems(page)) problems.push(`${name} @${vp.name}: axe: ${p}`);
  }
  await page.setViewportSize({ width: VIEWPORTS[0].width, height: VIEWPORTS[0].height });
  return problems;
}
