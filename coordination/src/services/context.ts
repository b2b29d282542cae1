/** Dependencies shared by the services: database, change bus, clock, randomness, settings. */
import type { Db } from "../db/open.js";
import type { ChangeBus } from "../changes/bus.js";

/** Tunables of the services (from the server config). */
export interface ServiceOptions {
  /** Public URL of this server (auth URLs, check-mode URLs). */
  serverUrl: string;
  /** Default node key lifetime for user-owned nodes, in ms (180 days). */
  nodeKeyExpiryMs: number;
  /** Ephemeral nodes offline longer than this are deleted, in ms. */
  ephemeralTimeoutMs: number;
  /** Lifetime of an interactive registration waiting for a person, in ms (while its node waits). */
  registrationTimeoutMs: number;
  /**
   * An interactive registration no node is waiting on (no follow-up request open) expires
   * this long after it was started or its node stopped waiting, in ms.
   */
  registrationIdleMs: number;
  /** Most live pending interactive registrations in total (over it: 429 registration_limit_total). */
  maxPendingRegistrations: number;
  /** Most live pending interactive registrations per source address, IPv6 per /64 (429 registration_limit_source). */
  maxPendingRegistrationsPerSource: number;
  /** Lifetime of a web login session, in ms. */
  webSessionMs: number;
  /** Tailnet DNS domain used when the settings table has none. */
  tailnetDomain: string;
}

/** Everything a service needs, injected. */
export interface ServiceContext {
  db: Db;
  bus: ChangeBus;
  /** Current time, ms since the epoch. */
  now: () => number;
  /** Cryptographically random bytes. */
  random: (n: number) => Buffer;
  options: ServiceOptions;
}

/** Default service options. */
export const DEFAULT_SERVICE_OPTIONS: Omit<ServiceOptions, "serverUrl"> = {
  nodeKeyExpiryMs: 180 * 24 * 3600_000,
  ephemeralTimeoutMs: 30 * 60_000,
  registrationTimeoutMs: 15 * 60_000,
  registrationIdleMs: 60_000,
  maxPendingRegistrations: 1000,
  maxPendingRegistrationsPerSource: 20,
  webSessionMs: 24 * 3600_000,
  tailnetDomain: "lattice.internal",
};

/** Parses JSON stored in a text column, falling back on corruption. */
export function parseJson<T>(text: string | null | undefined, fallback: T): T {
  if (text == null) return fallback;
  try {
    return JSON.parse(text) as T;
  } catch {
    return fallback;
  }
}
