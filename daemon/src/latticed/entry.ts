/** The `latticed` executable's entry (bin/latticed.js imports this). */
import { main } from "./main.js";

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    setImmediate(() => process.exit(code));
  },
  (e: unknown) => {
    process.stderr.write(`latticed: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
