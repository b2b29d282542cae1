/**
 * Route auto-approval (Tailscale kb/1337 `autoApprovers`): the server approves routes when
 * a node advertises them, and routes still pending when the policy changes, and stores the
 * approval in `nodes.approved_routes`. The compiler reads approvals as stored and never
 * approves on its own; an approval stays when the policy later stops auto-approving
 * (as in Tailscale: revoking is an admin action, `nodes approve-routes --remove`).
 */
import { autoApprovedRoutes, type Policy } from "@lattice/policy";
import type { Selectable } from "kysely";
import type { UsersTable } from "../db/schema.js";
import type { ServiceContext } from "./context.js";
import { parseJson } from "./context.js";
import type { NodeRow } from "./nodes.js";
import { topologyFrom } from "./topology.js";

/**
 * The approved-routes JSON `row` should have once the policy's autoApprovers ran over its
 * advertised routes (`hostinfo` overrides the row's, for a map request being stored), or
 * null when nothing new is approved.
 */
export function autoApprovedFor(policy: Policy, users: Selectable<UsersTable>[], row: NodeRow, hostinfo?: string): string | null {
  if (policy.autoApproverRoutes.size === 0 && policy.autoApproverExit.length === 0) return null;
  const topo = topologyFrom(users, [{ ...row, approved: 1, hostinfo: hostinfo ?? row.hostinfo }]);
  const node = topo.nodes[row.given_name];
  if (!node) return null;
  const add = autoApprovedRoutes(policy, node, topo.users);
  if (add.length === 0) return null;
  return JSON.stringify([...new Set([...parseJson<string[]>(row.approved_routes, []), ...add])].sort());
}

/** Approves, for every node, the pending advertised routes `policy` auto-approves; returns the node ids changed. */
export async function approvePendingRoutes(ctx: ServiceContext, policy: Policy): Promise<number[]> {
  if (policy.autoApproverRoutes.size === 0 && policy.autoApproverExit.length === 0) return [];
  const rows = await ctx.db.kysely.selectFrom("nodes").selectAll().orderBy("id").execute();
  const users = await ctx.db.kysely.selectFrom("users").selectAll().orderBy("id").execute();
  const changed: number[] = [];
  for (const row of rows) {
    if (!parseJson<{ RoutableIPs?: unknown[] }>(row.hostinfo, {}).RoutableIPs?.length) continue;
    const next = autoApprovedFor(policy, users, row);
    if (next === null) continue;
    await ctx.db.kysely.updateTable("nodes").set({ approved_routes: next, updated_at: ctx.now() }).where("id", "=", row.id).execute();
    changed.push(row.id);
  }
  return changed;
}
