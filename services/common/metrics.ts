import { Counter, collectDefaultMetrics, Registry } from "prom-client";

/**
 * The process's Prometheus registry (prom-client), served at GET /metrics.
 * Counters are created here, next to each other, so dashboards and alert
 * rules have one list to read.
 */
export const metrics = new Registry();
collectDefaultMetrics({ register: metrics });

export const deliveriesTotal = new Counter({
  name: "converger_deliveries_total",
  help: "Delivery tries by channel type and outcome (delivered, retry, failed).",
  labelNames: ["channel_type", "outcome"] as const,
  registers: [metrics],
});

/** Alert on any increase: an event of the log was not processed and waits in the dead-letter store. */
export const processingDeadLettersTotal = new Counter({
  name: "converger_processing_dead_letters_total",
  help: "Log events a consumer gave up on after its retries (dead-lettered).",
  labelNames: ["consumer", "topic"] as const,
  registers: [metrics],
});

export const inboundTotal = new Counter({
  name: "converger_inbound_requests_total",
  help: "Inbound webhook requests by channel type and outcome.",
  labelNames: ["channel_type", "outcome"] as const,
  registers: [metrics],
});

/** Rises while Redis is away: rate limits are then counted per process, not shared. */
export const rateLimitFallbacksTotal = new Counter({
  name: "converger_rate_limit_fallbacks_total",
  help: "Rate-limit checks answered by the in-memory insurance limiter because Redis was unreachable.",
  labelNames: ["limiter"] as const,
  registers: [metrics],
});
