/**
 * `lattice up`: POST /localapi/v0/up, then poll status until Running (Tailscale's `up`,
 * cmd/tailscale/cli/up.go, which watches the IPN bus; the LocalAPI doc has the CLI poll).
 *
 * Output, as Tailscale's:
 * - a login URL on stderr: `\nTo authenticate, visit:\n\n\t<URL>\n\n` (each new URL once);
 * - awaiting approval, once on stderr: `Machine is not yet approved by an admin.` + how to;
 * - Running: nothing, or `Success.` on stderr when a URL or the approval note was printed;
 * - `--json`: one compact JSON object per line on stdout: `{"AuthURL":..,"BackendState":..}`
 *   per login URL, `{"BackendState":"NeedsMachineAuth"}`, finally `{"BackendState":"Running"}`
 *   (Tailscale's fields, without the QR image).
 * `--timeout D` (0 = wait forever, the default): CliError `ERR_UP_TIMEOUT`, exit 1.
 * `--force-reauth`: Running counts only after the node key changed or a non-Running state
 * was seen (the daemon re-registers).
 */
import type { CommandContext, ExitCode } from "../context.js";
import { CliError } from "../errors.js";
import type { UpRequest } from "../types.js";

/** How often status is polled while waiting. */
export const UP_POLL_INTERVAL_MS = 250;

export interface UpOptions {
  request: UpRequest;
  timeoutMs: number;
  json: boolean;
}

export async function runUp(ctx: CommandContext, opts: UpOptions): Promise<ExitCode> {
  const { io, client } = ctx;
  const deadline = opts.timeoutMs > 0 ? io.now() + opts.timeoutMs : Infinity;
  let origKey = "";
  if (opts.request.ForceReauth) origKey = (await client.status(false)).Self?.PublicKey ?? "";
  const first = await client.up(opts.request);
  let printed = false;
  let lastUrl = "";
  let approvalNoted = false;
  let sawNotRunning = false;
  const emitJson = (o: object): void => io.out(JSON.stringify(o) + "\n");
  const observe = (state: string, authUrl: string): void => {
    if (state !== "Running") sawNotRunning = true;
    if (authUrl && authUrl !== lastUrl && state !== "Running") {
      lastUrl = authUrl;
      printed = true;
      if (opts.json) emitJson({ AuthURL: authUrl, BackendState: state });
      else io.err(`\nTo authenticate, visit:\n\n\t${authUrl}\n\n`);
    }
    if (state === "NeedsMachineAuth" && !approvalNoted) {
      approvalNoted = true;
      printed = true;
      if (opts.json) emitJson({ BackendState: "NeedsMachineAuth" });
      else io.err("\nMachine is not yet approved by an admin. Waiting for approval (on the control server: lattice-control nodes approve NODE).\n\n");
    }
  };
  observe(first.BackendState, first.AuthURL);
  let state: string = first.BackendState;
  let key = origKey;
  for (;;) {
    if (state === "Running" && (!opts.request.ForceReauth || sawNotRunning || key !== origKey)) break;
    if (io.now() >= deadline) {
      throw new CliError("ERR_UP_TIMEOUT", `timeout waiting for Lattice to enter a Running state (last state: ${state}); check health with "lattice status"`);
    }
    await io.sleep(Math.min(UP_POLL_INTERVAL_MS, Math.max(0, deadline - io.now())));
    const st = await client.status(false);
    state = st.BackendState;
    key = st.Self?.PublicKey ?? "";
    observe(state, st.AuthURL);
  }
  if (opts.json) emitJson({ BackendState: "Running" });
  else if (printed) io.err("Success.\n");
  return 0;
}
