/**
 * `--verify-clients`: asks the control server whether a node key may use this relay.
 *
 * Contract (the control-server side is implemented in coordination/, not here), the same
 * JSON shapes as Tailscale's derper `--verify-client-url` (tailcfg.DERPAdmitClientRequest
 * / Response):
 *
 *   POST <control-url>/derp/admit
 *   Content-Type: application/json
 *   {"NodePublic": "nodekey:<64 hex>", "Source": "<client IP>"}
 *
 *   200 {"Allow": true}    — the key is a current (not expired, not deleted) node of the tailnet
 *   200 {"Allow": false}   — anything else
 *
 * Any other status, a timeout (5 s) or an unparsable body denies the client (fail closed).
 * At most `maxInFlight` questions are outstanding; logins beyond that are denied at once.
 */
import { formatIp } from "@lattice/wireguard";
import type { AdmissionRequest, ServerConn } from "@lattice/derp";

export interface Verifier {
  admit(conn: ServerConn, req: AdmissionRequest): void;
  readonly stats: { asked: number; allowed: number; denied: number; failed: number; overloaded: number };
}

function sourceText(ip16: Uint8Array): string {
  const mapped = ip16.subarray(0, 10).every((b) => b === 0) && ip16[10] === 0xff && ip16[11] === 0xff;
  return formatIp(mapped ? ip16.subarray(12) : ip16);
}

export function makeVerifier(controlUrl: string, log: { warn(o: object, m: string): void }, maxInFlight = 256, timeoutMs = 5000): Verifier {
  const url = new URL("derp/admit", controlUrl.endsWith("/") ? controlUrl : controlUrl + "/").href;
  const stats = { asked: 0, allowed: 0, denied: 0, failed: 0, overloaded: 0 };
  let inFlight = 0;
  return {
    stats,
    admit(conn, req) {
      if (inFlight >= maxInFlight) {
        stats.overloaded++;
        conn.admit(false, "admission backlog full");
        return;
      }
      inFlight++;
      stats.asked++;
      const body = JSON.stringify({ NodePublic: `nodekey:${Buffer.from(req.clientKey).toString("hex")}`, Source: sourceText(req.remote.ip16) });
      fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body, signal: AbortSignal.timeout(timeoutMs) })
        .then(async (res) => {
          if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
          const j = (await res.json()) as { Allow?: unknown };
          if (j.Allow === true) {
            stats.allowed++;
            conn.admit(true);
          } else {
            stats.denied++;
            conn.admit(false, "control server says this key is not a current node of the tailnet");
          }
        })
        .catch((e: Error) => {
          stats.failed++;
          log.warn({ err: e.message, url }, "admission check failed; denying client");
          conn.admit(false, `admission check failed: ${e.message}`);
        })
        .finally(() => inFlight--);
    },
  };
}
