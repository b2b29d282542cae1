/**
 * The mapper: pure functions from the in-memory netmap snapshot and change sets to
 * MapResponses. It never reads the database; its input types are in ./types.ts.
 */
export * from "./types.js";
export * from "./full.js";
export * from "./session.js";
export * from "./encode.js";
