/** The identity-rules suite against SQLite (a real file in a temp dir). */
import { identitySuite } from "./identity-suite.js";

identitySuite("SQLite", async () => undefined);
