import { Counter, Gauge, Histogram } from "prom-client";
import { allAdapters } from "../channel-adapters/index.js";
import type { Pool } from "../common/db/pool.js";
import type { Logger } from "../common/obs/logger.js";
import { DURATION_BUCKETS, metrics } from "../common/obs/metrics.js";
import type { TryTiming } from "./store/attempts.js";
import type { DeliveryRow } from "./store/deliveries.js";

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

const deliveryAttemptDuration = new Histogram({
  name: "converger_delivery_attempt_duration_seconds",
  help: "Duration of one delivery try (channel lookup, pacing and the send), by channel type.",
  labelNames: ["channel_type"] as const,
  buckets: DURATION_BUCKETS,
  registers: [metrics],
});

export const deliveryLatency = new Histogram({
  name: "converger_delivery_latency_seconds",
  help: "From the activity stored to its delivery confirmed, retries included, by channel type.",
  labelNames: ["channel_type"] as const,
  buckets: [...DURATION_BUCKETS, 30, 60, 300, 900, 3600],
  registers: [metrics],
});

const circuitsOpen = new Gauge({
  name: "converger_circuits_open",
  help: "Channels of the deployment whose breaker is open or half-open (sampled every few seconds).",
  registers: [metrics],
});

export const circuitTransitionsTotal = new Counter({
  name: "converger_circuit_transitions_total",
  help: "Breaker transitions seen by this process's delivery worker, by the state entered (open, closed).",
  labelNames: ["to"] as const,
  registers: [metrics],
});

const OUTCOMES = ["delivered", "retry", "failed"];
for (const { type } of allAdapters()) {
  for (const outcome of OUTCOMES) deliveriesTotal.inc({ channel_type: type, outcome }, 0);
}
for (const to of ["open", "closed"]) circuitTransitionsTotal.inc({ to }, 0);
circuitsOpen.set(0);

const SAMPLE_EVERY_MS = 5_000;

/** Samples channel_circuits into converger_circuits_open, so a scrape never waits on the database; returns the stop. */
export function sampleCircuits(pool: Pool, log: Logger): () => void {
  let warned = false;
  async function sample(): Promise<void> {
    try {
      // channel_circuits_open indexes exactly these rows.
      const { rows } = await pool.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM channel_circuits WHERE state = 'open'",
      );
      circuitsOpen.set(rows[0]?.n ?? 0);
      warned = false;
    } catch (error) {
      if (!warned) log.warn({ err: error }, "open circuits not sampled");
      warned = true;
    }
  }
  const timer = setInterval(() => void sample(), SAMPLE_EVERY_MS);
  timer.unref();
  void sample();
  return () => clearInterval(timer);
}

/** Times one try into converger_delivery_attempt_duration_seconds; returns the timing for the attempts table. */
export function observeTry(channelType: string, timing: TryTiming): TryTiming {
  const seconds = (timing.finishedAt.getTime() - timing.startedAt.getTime()) / 1000;
  deliveryAttemptDuration.observe({ channel_type: channelType }, seconds);
  return timing;
}

/** End to end: from the activity's created_at (stored), else from the delivery row's. */
export function secondsSinceStored(row: DeliveryRow): number {
  const stored = Date.parse(String(row.activity.created_at ?? ""));
  const from = Number.isNaN(stored) ? row.created_at.getTime() : stored;
  return Math.max(0, (Date.now() - from) / 1000);
}
