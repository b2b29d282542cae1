/** The DNS/routes suite (dns-suite.ts) against PostgreSQL: a throwaway cluster started by the harness. */
import { dnsSuite } from "./dns-suite.js";
import { startPostgres, type PgCluster } from "./harness.js";

let cluster: PgCluster | undefined;
dnsSuite(
  "PostgreSQL",
  async (name) => {
    cluster ??= await startPostgres();
    return cluster.createDb(`lattice_${name}`);
  },
  () => cluster?.stop(),
);
