import { Gauge, Histogram } from "prom-client";
import { DURATION_BUCKETS, metrics } from "../obs/metrics.js";
import type { Pool, PoolClient } from "./pool.js";

// The services that own tables, hence pools: their series exist (at 0) before any pool opens.
const OWNERS = ["auth", "conversations", "delivery", "uploads"];
const pools = new Map<Pool, string>();

function livePools(): [Pool, string][] {
  for (const pool of pools.keys()) if (pool.ended) pools.delete(pool);
  return [...pools];
}

// Registered by being made; read at scrape time by its collect().
new Gauge({
  name: "converger_db_pool_connections",
  help: "PostgreSQL pool connections by owning service and state (total, idle, waiting: callers queued for one).",
  labelNames: ["service", "state"] as const,
  registers: [metrics],
  collect() {
    for (const service of OWNERS) for (const state of ["total", "idle", "waiting"]) this.set({ service, state }, 0);
    for (const [pool, service] of livePools()) {
      this.inc({ service, state: "total" }, pool.totalCount);
      this.inc({ service, state: "idle" }, pool.idleCount);
      this.inc({ service, state: "waiting" }, pool.waitingCount);
    }
  },
});

// Registered by being made; read at scrape time by its collect().
new Gauge({
  name: "converger_db_pool_max",
  help: "The most connections a service's pool opens.",
  labelNames: ["service"] as const,
  registers: [metrics],
  collect() {
    for (const service of OWNERS) this.set({ service }, 0);
    for (const [pool, service] of livePools()) this.inc({ service }, pool.options.max ?? 0);
  },
});

const dbQueryDuration = new Histogram({
  name: "converger_db_query_duration_seconds",
  help: "PostgreSQL statement duration by owning service (transactions' statements included).",
  labelNames: ["service"] as const,
  buckets: DURATION_BUCKETS,
  registers: [metrics],
});

type AnyQuery = (...args: unknown[]) => unknown;

/**
 * Reports a service's pool in the pool gauges (until it ends) and times
 * every statement on its connections. Timed on each client rather than on
 * pool.query, which goes through a client too: once per statement, whether
 * it runs alone or inside a transaction.
 */
export function instrumentPool(pool: Pool, service: string): Pool {
  pools.set(pool, service);
  const labels = { service };
  pool.on("connect", (client: PoolClient) => {
    const query = client.query as unknown as AnyQuery;
    (client as unknown as { query: AnyQuery }).query = (...args: unknown[]) => {
      const done = dbQueryDuration.startTimer(labels);
      const last = args.length - 1;
      const callback = args[last];
      // pool.query hands its client a callback; promise callers get a thenable back.
      if (typeof callback === "function") {
        args[last] = (...results: unknown[]) => {
          done();
          return (callback as AnyQuery)(...results);
        };
        return query.apply(client, args);
      }
      const result = query.apply(client, args);
      const end = () => void done();
      if (result && typeof (result as Promise<unknown>).then === "function")
        (result as Promise<unknown>).then(end, end);
      return result;
    };
  });
  return pool;
}
