/** The integration suite against PostgreSQL: a throwaway cluster started by the harness. */
import { controlSuite } from "./suite.js";
import { startPostgres, type PgCluster } from "./harness.js";

let cluster: PgCluster | undefined;
controlSuite(
  "PostgreSQL",
  async (name) => {
    cluster ??= await startPostgres();
    return cluster.createDb(`lattice_${name}`);
  },
  () => cluster?.stop(),
);
