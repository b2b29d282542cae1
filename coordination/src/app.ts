/**
 * The coordination server's composition root: opens the database, builds the services
 * with their injected clock and randomness, and runs periodic housekeeping.
 */
import { randomBytes } from "node:crypto";
import { openDatabase, type Db } from "./db/open.js";
import { ChangeBus } from "./changes/bus.js";
import { DEFAULT_SERVICE_OPTIONS, type ServiceContext, type ServiceOptions } from "./services/context.js";
import { UserService } from "./services/users.js";
import { PolicyService } from "./services/policy.js";
import { AuthKeyService } from "./services/authkeys.js";
import { NodeService } from "./services/nodes.js";
import { RegistrationService } from "./services/registrations.js";
import { ApiKeyService } from "./services/apikeys.js";
import { SettingsService } from "./services/settings.js";
import { DnsService } from "./services/dns.js";
import { SessionService } from "./services/sessions.js";
import { AuditService, type AuditEntry } from "./services/audit.js";
import { SshCheckService, type SshCheckLimits } from "./services/ssh-checks.js";

/** Every service of a running control plane. */
export interface Control {
  ctx: ServiceContext;
  db: Db;
  bus: ChangeBus;
  users: UserService;
  policies: PolicyService;
  authKeys: AuthKeyService;
  nodes: NodeService;
  registrations: RegistrationService;
  apiKeys: ApiKeyService;
  settings: SettingsService;
  /** The tailnet's DNS settings (issue 10). */
  dns: DnsService;
  sessions: SessionService;
  audit: AuditService;
  /** SSH check mode (HoldAndDelegate) checks and approvals. */
  sshChecks: SshCheckService;
  /** Stops housekeeping and closes the database. */
  close(): Promise<void>;
}

/** Options for {@link createControl}. */
export interface CreateControlOptions {
  /** SQLite path or postgres:// URL. */
  db: string;
  options: Partial<ServiceOptions> & { serverUrl: string };
  now?: () => number;
  random?: (n: number) => Buffer;
  /** Housekeeping interval in ms (0 = none). */
  sweepIntervalMs?: number;
  /** Reports errors from background work. */
  onError?: (e: unknown) => void;
  /** Accept SQLite files that group/others may access (see db/open.ts). */
  allowInsecurePermissions?: boolean;
  /** Called when the database lock is lost while running (PostgreSQL connection gone). */
  onDbLockLost?: (e: Error) => void;
  /** Called after each audit log entry is stored (one log line per admin action). */
  onAudit?: (e: Omit<AuditEntry, "id" | "at">) => void;
  /** Told the duration (ms) and outcome of every running policy compile. */
  onPolicyCompile?: (ms: number, ok: boolean) => void;
  /** SSH check-mode limits (defaults: DEFAULT_SSH_CHECK_LIMITS). */
  sshCheckLimits?: Partial<SshCheckLimits>;
}

/**
 * Opens the database (taking its lock) and builds the services.
 * @throws {StartupError} when the database cannot be opened; nothing stays open then.
 */
export async function createControl(o: CreateControlOptions): Promise<Control> {
  const db = await openDatabase(o.db, {
    allowInsecurePermissions: o.allowInsecurePermissions ?? false,
    ...(o.onDbLockLost ? { onLockLost: o.onDbLockLost } : {}),
  });
  try {
    return await buildControl(o, db);
  } catch (e) {
    await db.close().catch(() => {});
    throw e;
  }
}

async function buildControl(o: CreateControlOptions, db: Db): Promise<Control> {
  const onError = o.onError ?? (() => {});
  const bus = new ChangeBus(onError);
  const ctx: ServiceContext = {
    db,
    bus,
    now: o.now ?? Date.now,
    random: o.random ?? randomBytes,
    options: { ...DEFAULT_SERVICE_OPTIONS, ...o.options },
  };
  const settings = new SettingsService(ctx);
  const secret = Buffer.from(await settings.getOrCreate("cookie_secret", () => ctx.random(32).toString("base64url")), "base64url");
  const users = new UserService(ctx);
  const policies = new PolicyService(ctx, o.onPolicyCompile);
  const authKeys = new AuthKeyService(ctx, users, policies);
  const nodes = new NodeService(ctx, authKeys, policies);
  const registrations = new RegistrationService(ctx, nodes);
  const sshChecks = new SshCheckService(ctx, policies, o.sshCheckLimits);
  await nodes.markAllOffline();
  let timer: NodeJS.Timeout | undefined;
  if (o.sweepIntervalMs) {
    let running = false;
    timer = setInterval(() => {
      if (running) return;
      running = true;
      nodes
        .sweep()
        .then(() => sshChecks.sweep())
        .catch(onError)
        .finally(() => (running = false));
    }, o.sweepIntervalMs);
    timer.unref();
  }
  return {
    ctx,
    db,
    bus,
    users,
    policies,
    authKeys,
    nodes,
    registrations,
    apiKeys: new ApiKeyService(ctx),
    settings,
    dns: new DnsService(ctx),
    sessions: new SessionService(ctx, secret),
    audit: new AuditService(ctx, o.onAudit),
    sshChecks,
    async close() {
      if (timer) clearInterval(timer);
      await db.close();
    },
  };
}
