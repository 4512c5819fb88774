import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";

/**
 * The process's Prometheus registry (prom-client), served at GET /metrics.
 * Each service declares its own counters in its folder's metrics.ts and
 * registers them here. Labels are route templates, RPC names, channel types
 * and reasons, never ids: hostile input must not grow the series count.
 */
export const metrics = new Registry();
collectDefaultMetrics({ register: metrics });

/** One bucket set for every duration: dashboards compare routes, RPCs and tries on the same scale. */
export const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Rises while Redis is away: rate limits are then counted per process, not shared. */
export const rateLimitFallbacksTotal = new Counter({
  name: "converger_rate_limit_fallbacks_total",
  help: "Rate-limit checks answered by the in-memory insurance limiter because Redis was unreachable.",
  labelNames: ["limiter"] as const,
  registers: [metrics],
});

type RedisRole = "bus" | "limits";
const redisClients = new Map<RedisRole, Set<{ status: string }>>();

// Registered by being made; read at scrape time by its collect().
new Gauge({
  name: "converger_redis_up",
  help: "1 while every Redis connection of the role (bus, limits) is ready, 0 otherwise; absent without REDIS_URL.",
  labelNames: ["client"] as const,
  registers: [metrics],
  collect() {
    this.reset();
    for (const [role, clients] of redisClients) {
      if (clients.size === 0) continue;
      const up = [...clients].every((c) => c.status === "ready");
      this.set({ client: role }, up ? 1 : 0);
    }
  },
});

/**
 * Reports an ioredis client in converger_redis_up until `forget` is called (on
 * close). Read at scrape time from the client's own status, so no event can be missed.
 */
export function watchRedis(role: RedisRole, client: { status: string }): () => void {
  const clients = redisClients.get(role) ?? new Set();
  redisClients.set(role, clients);
  clients.add(client);
  return () => void clients.delete(client);
}
