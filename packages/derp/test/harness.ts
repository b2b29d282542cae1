import { randomBytes } from "node:crypto";
import { DerpClient, DerpServer, type DerpMessage, type DerpServerOptions, type ServerConn } from "../src/index.js";

export const random = (n: number): Uint8Array => Uint8Array.from(randomBytes(n));

/** A fake clock. */
export class Clock {
  t = 1_000_000;
  now = (): number => this.t;
}

/** A client core wired to a server core in memory, with manual flushing. */
export class Pair {
  readonly client: DerpClient;
  readonly conn: ServerConn;
  readonly messages: DerpMessage[] = [];
  closedReason: string | null = null;
  woken = 0;
  /** When true, server output is not pulled (a slow reader). */
  stalled = false;

  constructor(server: DerpServer, opts: { meshKey?: Uint8Array; privateKey?: Uint8Array } = {}) {
    this.client = new DerpClient({ privateKey: opts.privateKey ?? random(32), random, ...(opts.meshKey ? { meshKey: opts.meshKey } : {}) });
    this.conn = server.newConn({ ip16: Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 10, 0, 0, 1]), port: 1234 }, {
      wake: () => this.woken++,
      close: (r) => (this.closedReason = r),
    });
  }

  get key(): Uint8Array {
    return this.client.publicKey;
  }

  /** Moves bytes both ways until quiet. */
  pump(): void {
    for (let i = 0; i < 100; i++) {
      let moved = false;
      if (!this.stalled) {
        for (let f = this.conn.pull(); f !== null; f = this.conn.pull()) {
          moved = true;
          const r = this.client.receive(f);
          if (!r.ok) throw r.error;
          this.messages.push(...r.messages);
        }
      }
      for (const f of this.client.takeOutput()) {
        moved = true;
        this.conn.receive(f);
      }
      if (!moved) return;
    }
  }

  kinds(): string[] {
    return this.messages.map((m) => m.kind);
  }
}

export function newServer(clock: Clock, extra: Partial<DerpServerOptions> = {}): DerpServer {
  return new DerpServer({ privateKey: random(32), random, now: clock.now, ...extra });
}
