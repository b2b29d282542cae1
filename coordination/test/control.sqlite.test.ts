/** The integration suite against SQLite (a real file in a temp dir). */
import { controlSuite } from "./suite.js";

controlSuite("SQLite", async () => undefined);
