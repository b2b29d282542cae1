/**
 * Hostile client: floods `POST /machine/register` with interactive registrations (no auth
 * key) through the real Noise control channel — issue 6 A6. Each attempt uses a fresh,
 * self-generated machine key (so a fresh Noise connection), or with `sameMachine` one
 * machine key with ever new node keys; each request carries a Hostinfo padded to
 * `hostinfoBytes`. Records what the server answered, by outcome and error code.
 */
import { randomBytes } from "node:crypto";
import { ControlClient, ControlError, fetchServerKey, noiseKeyPair } from "@lattice/control-client";
import { formatKey, type Hostinfo, type RegisterRequest } from "@lattice/types";

/** Options of {@link registrationFlood}. */
export interface RegistrationFloodOptions {
  serverUrl: string;
  /** Stop after this many attempts (default: until `signal` aborts). */
  attempts?: number;
  /** Stop when this aborts (checked between attempts). */
  signal?: AbortSignal;
  /** Parallel workers (default 4). */
  concurrency?: number;
  /** Local addresses to dial from, cycled (e.g. 127.0.0.2, 127.0.0.3 … to pose as several sources). */
  sources?: readonly string[];
  /** Approximate size of each request's Hostinfo JSON, bytes (default 1 KiB). */
  hostinfoBytes?: number;
  /** Reuse one machine key per worker with a new node key each time (default false: new machine each time). */
  sameMachine?: boolean;
}

/** What a flood achieved. */
export interface RegistrationFloodResult {
  attempts: number;
  /** Answers carrying an AuthURL (a pending registration was created or reused). */
  authUrls: string[];
  /** Refusals by error code (e.g. registration_limit_source, body_too_large). */
  refused: Record<string, number>;
  /** Transport failures (connection refused/reset before an answer). */
  transportErrors: number;
}

/**
 * A Hostinfo of about `bytes` bytes of JSON, padded with TCP services whose descriptions
 * carry the bulk (what a portlist on a busy host might look like).
 */
export function paddedHostinfo(hostname: string, bytes: number): Hostinfo {
  const h: Hostinfo = { Hostname: hostname, OS: "linux" };
  const base = JSON.stringify(h).length;
  const services: NonNullable<Hostinfo["Services"]> = [];
  let size = base + 14; // ,"Services":[]
  let port = 1;
  while (size < bytes) {
    const room = bytes - size - 45;
    const description = "x".repeat(Math.max(1, Math.min(4000, room)));
    services.push({ Proto: "tcp", Port: port++, Description: description });
    size += description.length + 45;
  }
  if (services.length > 0) h.Services = services;
  return h;
}

/** Runs the flood; resolves when `attempts` are done or `signal` aborted. */
export async function registrationFlood(opts: RegistrationFloodOptions): Promise<RegistrationFloodResult> {
  const serverPublic = await fetchServerKey(opts.serverUrl);
  const result: RegistrationFloodResult = { attempts: 0, authUrls: [], refused: {}, transportErrors: 0 };
  const sources = opts.sources ?? [undefined];
  const hostinfoBytes = opts.hostinfoBytes ?? 1024;
  let next = 0;
  const more = () => !opts.signal?.aborted && (opts.attempts === undefined || next < opts.attempts);

  const worker = async (w: number): Promise<void> => {
    let client: ControlClient | null = null;
    try {
      while (more()) {
        const i = next++;
        const localAddress = sources[i % sources.length];
        try {
          if (!client || !opts.sameMachine || client.closed) {
            client?.close();
            client = await ControlClient.connect({
              serverUrl: opts.serverUrl,
              serverPublic,
              machineKey: noiseKeyPair(new Uint8Array(randomBytes(32))),
              ...(localAddress !== undefined ? { localAddress } : {}),
            });
          }
          const req: RegisterRequest = {
            Version: 100,
            NodeKey: formatKey("node", new Uint8Array(randomBytes(32))),
            Hostinfo: paddedHostinfo(`flood-${w}-${i}`, hostinfoBytes),
          } as RegisterRequest;
          result.attempts++;
          const resp = await client.register(req);
          if (resp.AuthURL) result.authUrls.push(resp.AuthURL);
        } catch (e) {
          if (e instanceof ControlError && e.status !== 0) result.refused[e.code] = (result.refused[e.code] ?? 0) + 1;
          else result.transportErrors++;
          client?.close();
          client = null;
        } finally {
          if (!opts.sameMachine) {
            client?.close();
            client = null;
          }
        }
      }
    } finally {
      client?.close();
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency ?? 4 }, (_, w) => worker(w)));
  return result;
}
