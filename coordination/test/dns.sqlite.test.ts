/** The DNS/routes suite (dns-suite.ts) against SQLite (a real file in a temp dir). */
import { dnsSuite } from "./dns-suite.js";

dnsSuite("SQLite", async () => undefined);
