/** The identity-rules suite against PostgreSQL: a throwaway cluster started by the harness. */
import { identitySuite } from "./identity-suite.js";
import { startPostgres, type PgCluster } from "./harness.js";

let cluster: PgCluster | undefined;
identitySuite(
  "PostgreSQL",
  async (name) => {
    cluster ??= await startPostgres();
    return cluster.createDb(`lattice_${name}`);
  },
  () => cluster?.stop(),
);
