// An in-memory control server for backend/control-loop tests: register answers come from
// a handler; map streams are queues the test pushes MapResponses into (or ends/fails).
import { ControlError, type MapStream } from "@lattice/control-client";
import type { MapRequest, MapResponse, RegisterRequest, RegisterResponse } from "@lattice/types";
import type { ControlConn, ControlDialer } from "../../src/latticed/control-loop.js";

/** One open map stream. */
export class FakeStream implements MapStream {
  readonly queue: MapResponse[] = [];
  error: Error | null = null;
  ended = false;
  #wake: (() => void) | null = null;
  constructor(readonly req: MapRequest) {}
  push(m: MapResponse): void {
    this.queue.push(m);
    this.#wake?.();
  }
  fail(e: Error): void {
    this.error = e;
    this.#wake?.();
  }
  close(): void {
    this.ended = true;
    this.#wake?.();
  }
  [Symbol.asyncIterator](): AsyncIterator<MapResponse> {
    return {
      next: async () => {
        for (;;) {
          if (this.queue.length > 0) return { value: this.queue.shift()!, done: false };
          if (this.error) throw this.error;
          if (this.ended) return { value: undefined, done: true };
          await new Promise<void>((r) => (this.#wake = r));
        }
      },
      return: async () => {
        this.ended = true;
        return { value: undefined, done: true };
      },
    };
  }
}

export const OK_REGISTER: RegisterResponse = { User: { ID: 1, DisplayName: "A" }, Login: { ID: 1, Provider: "lattice", LoginName: "a@", DisplayName: "A" }, NodeKeyExpired: false, MachineAuthorized: true, AuthURL: "", Error: "" };

/** The fake server. */
export class FakeControl {
  readonly registers: RegisterRequest[] = [];
  readonly streams: FakeStream[] = [];
  readonly updates: MapRequest[] = [];
  dials = 0;
  /** The newest connection. */
  lastConn: ControlConn | null = null;
  /** When set, dialing fails with this. */
  down: Error | null = null;
  /** The answer to a register request (default: authorized). */
  onRegister: (r: RegisterRequest) => Promise<RegisterResponse> = async () => OK_REGISTER;
  /** What a new stream does first (default: nothing, the test pushes). */
  onStream: (s: FakeStream) => void = () => {};
  #waiters: Array<() => void> = [];

  dial: ControlDialer = async () => {
    this.dials++;
    if (this.down) throw this.down;
    const conn: ControlConn = {
      closed: false,
      register: async (r) => {
        this.registers.push(r);
        this.#notify();
        return this.onRegister(r);
      },
      map: (r) => {
        const s = new FakeStream(r);
        if (r.Stream) {
          this.streams.push(s);
          this.onStream(s);
        } else {
          this.updates.push(r);
          s.close();
        }
        this.#notify();
        return s;
      },
      close: () => {
        (conn as { closed: boolean }).closed = true;
        for (const s of this.streams) s.close();
      },
    };
    this.lastConn = conn;
    return conn;
  };

  #notify(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** Resolves once `pred` holds (checked after every request). */
  async until(pred: () => boolean, ms = 3_000): Promise<void> {
    const end = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > end) throw new Error("fake control: condition not reached");
      await Promise.race([new Promise<void>((r) => this.#waiters.push(r)), new Promise((r) => setTimeout(r, 20))]);
    }
  }

  /** The newest live stream. */
  get stream(): FakeStream {
    return this.streams[this.streams.length - 1]!;
  }
}

export function refused(status: number, code: string): ControlError {
  return new ControlError(status, code, `${code} (HTTP ${status})`);
}
