import { Counter, collectDefaultMetrics, Registry } from "prom-client";

/**
 * The process's Prometheus registry (prom-client), served at GET /metrics.
 * Each service declares its own counters in its folder's metrics.ts and
 * registers them here.
 */
export const metrics = new Registry();
collectDefaultMetrics({ register: metrics });

/** Rises while Redis is away: rate limits are then counted per process, not shared. */
export const rateLimitFallbacksTotal = new Counter({
  name: "converger_rate_limit_fallbacks_total",
  help: "Rate-limit checks answered by the in-memory insurance limiter because Redis was unreachable.",
  labelNames: ["limiter"] as const,
  registers: [metrics],
});
