/**
 * @lattice/coordination: the coordination server as a library (the `lattice-control`
 * program is src/main.ts). Embedders and in-process tests start here.
 */
export { createControl, type Control, type CreateControlOptions } from "./app.js";
export { serve, type RunningServer } from "./serve.js";
export { resolveConfig, readConfigFile, readEnv, type ServeConfig, type RawConfig } from "./config.js";
export { ChangeBus, type Change, type ChangeListener } from "./changes/bus.js";
export { ControlNodeBackend, type NodeBackendOptions } from "./services/node-backend.js";
export { ControlError, NotFoundError, ConflictError, ValidationError, AuthKeyError, UnauthorizedError, PolicyRejectedError } from "./errors.js";
export { openDatabase, type Db } from "./db/open.js";
export { parseDuration } from "./duration.js";
