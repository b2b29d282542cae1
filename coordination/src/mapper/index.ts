/**
 * The mapper: pure functions from the in-memory netmap snapshot and change sets to
 * MapResponses. It never reads the database (see ../nodeapi/backend.ts for its inputs).
 */
export * from "./full.js";
export * from "./session.js";
export * from "./encode.js";
