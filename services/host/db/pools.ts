import type { ServiceName } from "../../common/config.js";
import { instrumentPool } from "../../common/db/metrics.js";
import { createPool, type Pool } from "../../common/db/pool.js";

/**
 * Connections one process opens at most, over all its services' pools: what
 * its single shared pool allowed before each service had its own, so
 * splitting the pools does not multiply what a deployment asks of PostgreSQL.
 */
const PROCESS_CONNECTIONS = 20;
// Conversations carries the write path (group commit, up to 4 transactions at
// once, and the outbox relay) and most reads: it gets a double share.
const WEIGHTS: Partial<Record<ServiceName, number>> = { conversations: 2 };
// Enough for a transaction and a concurrent read even when many services share the budget.
const MIN_CONNECTIONS = 2;

/** The PostgreSQL schema holding a service's tables and its migrations bookkeeping. */
export function schemaFor(owner: ServiceName): string {
  return owner;
}

/** Each service's share of the process's connections (a service alone gets them all). */
function poolSizes(owners: ServiceName[]): Map<ServiceName, number> {
  const weightOf = (name: ServiceName) => WEIGHTS[name] ?? 1;
  const total = owners.reduce((sum, name) => sum + weightOf(name), 0);
  return new Map(
    owners.map((name) => [name, Math.max(MIN_CONNECTIONS, Math.floor((PROCESS_CONNECTIONS * weightOf(name)) / total))]),
  );
}

/** One pool per service with tables, each confined to the service's schema and measured under its name. */
export function openServicePools(
  url: string,
  owners: ServiceName[],
  onIdleError: (error: Error) => void,
): Map<ServiceName, Pool> {
  const sizes = poolSizes(owners);
  return new Map(
    owners.map((name) => {
      const max = sizes.get(name);
      const pool = createPool(url, onIdleError, { schema: schemaFor(name), ...(max === undefined ? {} : { max }) });
      return [name, instrumentPool(pool, name)];
    }),
  );
}
