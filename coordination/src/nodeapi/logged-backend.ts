/**
 * A {@link NodeBackend} that logs what operators need to follow nodes (issue 11): one line
 * per registration (accepted, waiting for approval or interactive login, or refused with
 * its code) and one per map stream opening and closing. Everything else is delegated.
 */
import type { MachineKeyString, NodeKeyString, RegisterRequest, RegisterResponse } from "@lattice/types";
import { ControlError } from "../errors.js";
import type { MapAuthorization, NodeBackend, NodeUpdate, RequestOrigin, VersionedChange } from "./backend.js";
import type { NodeID } from "@lattice/types";

/** The logger it writes to (pino's shape). */
export interface NodeEventLog {
  info(obj: unknown, msg?: string): void;
  warn(obj: unknown, msg?: string): void;
}

/** Registration outcomes as counted (metrics). */
export type RegistrationOutcome = "accepted" | "pending_approval" | "interactive" | "refused";

/**
 * Wraps `inner`, logging registrations and map streams to `log`; `count` is told every
 * registration's outcome (and a refusal's code).
 */
export function loggedBackend(inner: NodeBackend, log: NodeEventLog, count: (outcome: RegistrationOutcome, code?: string) => void = () => {}): NodeBackend {
  return {
    async register(machineKey: MachineKeyString, req: RegisterRequest, signal: AbortSignal, origin?: RequestOrigin): Promise<RegisterResponse> {
      const hostname = typeof req.Hostinfo?.Hostname === "string" ? req.Hostinfo.Hostname.slice(0, 64) : undefined;
      const base = { machineKey, nodeKey: req.NodeKey, hostname, source: origin?.source, authKey: req.Auth?.AuthKey ? "yes" : "no" };
      try {
        const r = await inner.register(machineKey, req, signal, origin);
        const outcome = r.AuthURL ? "interactive login started" : r.MachineAuthorized ? "accepted" : "accepted, waiting for approval";
        log.info({ registration: { ...base, outcome, user: r.Login?.LoginName } }, `registration ${outcome}`);
        count(r.AuthURL ? "interactive" : r.MachineAuthorized ? "accepted" : "pending_approval");
        return r;
      } catch (e) {
        const code = e instanceof ControlError ? e.code : "internal";
        log.warn({ registration: { ...base, outcome: "refused", code } }, `registration refused: ${code}`);
        count("refused", code);
        throw e;
      }
    },
    authorizeMap: (m: MachineKeyString, n: NodeKeyString): Promise<MapAuthorization> => inner.authorizeMap(m, n),
    updateNodeFromMapRequest: (id: NodeID, u: NodeUpdate) => inner.updateNodeFromMapRequest(id, u),
    async setOnline(nodeId: NodeID, online: boolean) {
      log.info({ mapStream: { nodeId, event: online ? "open" : "close" } }, online ? "map stream opened" : "map stream closed");
      return inner.setOnline(nodeId, online);
    },
    netmapState: () => inner.netmapState(),
    subscribe: (l: (c: VersionedChange) => void) => inner.subscribe(l),
    // Optional capabilities are forwarded only when the inner backend has them (attach.ts
    // answers 404 for a missing one).
    ...(inner.sshAction ? { sshAction: inner.sshAction.bind(inner) } : {}),
    ...(inner.sshCheckWait ? { sshCheckWait: inner.sshCheckWait.bind(inner) } : {}),
  };
}
