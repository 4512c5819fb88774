import { Gauge } from "prom-client";
import type { Pool } from "../db/pool.js";
import type { Logger } from "../obs/logger.js";
import { metrics } from "../obs/metrics.js";

export type OutboxName = "conversations" | "uploads";
const OUTBOXES: OutboxName[] = ["conversations", "uploads"];

const outboxBacklog = new Gauge({
  name: "converger_outbox_backlog",
  help: "Unpublished outbox rows (sampled every few seconds).",
  labelNames: ["outbox"] as const,
  registers: [metrics],
});

const outboxOldestAge = new Gauge({
  name: "converger_outbox_oldest_age_seconds",
  help: "Age of the oldest unpublished outbox row, 0 when the outbox is empty (sampled every few seconds).",
  labelNames: ["outbox"] as const,
  registers: [metrics],
});

for (const outbox of OUTBOXES) {
  outboxBacklog.set({ outbox }, 0);
  outboxOldestAge.set({ outbox }, 0);
}

const SAMPLE_EVERY_MS = 5_000;

/**
 * Samples the owning service's outbox table into the outbox gauges, so a
 * scrape never waits on the database. Both reads use the partial index on
 * unpublished ids. Returns the function that stops it.
 */
export function sampleOutbox(options: { pool: Pool; table: string; outbox: OutboxName; log: Logger }): () => void {
  const { table, outbox } = options;
  const labels = { outbox };
  let warned = false;
  async function sample(): Promise<void> {
    try {
      const { rows } = await options.pool.query<{ backlog: string; age: number | null }>(
        `SELECT (SELECT count(*) FROM ${table} WHERE published_at IS NULL) AS backlog,
                (SELECT extract(epoch FROM now() - created_at)::float8 FROM ${table}
                 WHERE published_at IS NULL ORDER BY id LIMIT 1) AS age`,
      );
      const row = rows[0];
      outboxBacklog.set(labels, Number(row?.backlog ?? 0));
      outboxOldestAge.set(labels, Math.max(0, row?.age ?? 0));
      warned = false;
    } catch (error) {
      if (!warned) options.log.warn({ err: error, outbox }, "outbox metrics not sampled");
      warned = true;
    }
  }
  const timer = setInterval(() => void sample(), SAMPLE_EVERY_MS);
  timer.unref();
  void sample();
  return () => clearInterval(timer);
}

/** One consumer group's position on one partition. */
export interface LagSample {
  group: string;
  topic: string;
  partition: string;
  lag: number;
}
const lagSources = new Set<() => readonly LagSample[]>();

// Registered by being made; read at scrape time by its collect().
new Gauge({
  name: "converger_consumer_lag",
  help: "Records of a topic partition not yet consumed by a consumer group (in-process log or Kafka).",
  labelNames: ["group", "topic", "partition"] as const,
  registers: [metrics],
  collect() {
    this.reset();
    for (const source of lagSources) {
      for (const { group, topic, partition, lag } of source()) this.inc({ group, topic, partition }, lag);
    }
  },
});

/** Reports an event log's lag at scrape time until the returned function is called; `source` must be cheap. */
export function reportLag(source: () => readonly LagSample[]): () => void {
  lagSources.add(source);
  return () => void lagSources.delete(source);
}
