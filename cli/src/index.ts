/** @lattice/cli: the `lattice` command line (see cli.ts) and its LocalAPI client. */
export { run } from "./cli.js";
export type { CliIo, CommandContext } from "./context.js";
export * from "./errors.js";
export { DEFAULT_SOCKET, LocalClient, type PingType } from "./localapi.js";
export type * from "./types.js";
