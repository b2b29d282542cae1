/**
 * What a command gets from the edge: output sinks, stdin, a clock and sleep (injected so
 * tests run `up`'s polling and `ping`'s 1 s spacing without waiting), and the LocalAPI client.
 */
import type { Readable, Writable } from "node:stream";
import type { LocalClient } from "./localapi.js";

export interface CliIo {
  /** Text to stdout / stderr. */
  out(s: string): void;
  err(s: string): void;
  /** Byte streams for `nc`. */
  stdin: Readable;
  stdout: Writable;
  /** Wall clock, ms since the epoch. */
  now(): number;
  sleep(ms: number): Promise<void>;
  env: Readonly<Record<string, string | undefined>>;
}

export interface CommandContext {
  io: CliIo;
  client: LocalClient;
}

/** A command's result: the process exit code. Errors are thrown (see errors.ts). */
export type ExitCode = number;
