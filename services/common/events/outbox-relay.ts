import type { JsonValue } from "@bufbuild/protobuf";
import { inTransaction, type Pool } from "../db/pool.js";
import type { Logger } from "../obs/logger.js";
import type { EventLog, LogRecord } from "./event-log.js";
import { type OutboxName, sampleOutbox } from "./metrics.js";

export interface OutboxRelayOptions {
  pool: Pool;
  /** The owning service's outbox table: (id bigserial, event_id, topic, key, tenant_id, payload, traceparent, published_at). */
  table: string;
  /** The outbox's name in converger_outbox_* metrics; unsampled without one. */
  outbox?: OutboxName;
  log: Logger;
  eventLog: EventLog;
  retentionHours: number;
  /** Fallback poll for rows written by other processes. */
  pollIntervalMs?: number;
  /** More housekeeping of the owner, run with the outbox's (every 10 minutes). */
  onPrune?: () => Promise<void>;
}

// With Kafka, a pass waits this long after a wake-up so rows committed meanwhile go in the same produce
// request (Kafka producers call it linger.ms; librdkafka's default is 5 ms): fewer, fuller record batches.
const KAFKA_LINGER_MS = 20;

const BATCH = 500;
const MAX_BATCH_BYTES = 512 * 1024;
const PRUNE_EVERY_MS = 10 * 60 * 1000;
// After a failed append (Kafka down) passes wait this long, doubling up to the cap.
const BACKOFF_MS = [250, 5_000] as const;

/**
 * Relays committed outbox rows to the event log at least once, marking them
 * published only after the log took them (Kafka acknowledged them). Any number
 * of relays may run: each claims a batch with FOR UPDATE SKIP LOCKED and
 * publishes a row only when every earlier unpublished row of its key is in its
 * own batch, so per-key (per-conversation) order holds across relays. While the
 * log is unreachable rows stay in the outbox and go out, in order, once it is back.
 */
export function createOutboxRelay(options: OutboxRelayOptions) {
  if (!/^[a-z_]+$/.test(options.table)) throw new Error(`not a table name: ${options.table}`);
  const { table } = options;
  let wanted = false;
  let running: Promise<void> | undefined;
  let timers: NodeJS.Timeout[] = [];
  let failures = 0;
  let pausedUntil = 0;
  let stopSampling = () => {};

  async function pass(): Promise<number> {
    return inTransaction(options.pool, async (client) => {
      const { rows } = await client.query<{
        id: string;
        event_id: string;
        topic: string;
        key: string;
        tenant_id: string;
        payload: JsonValue;
        traceparent: string | null;
        bytes: number;
      }>(
        `WITH batch AS (
           SELECT id FROM ${table} WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
         SELECT o.id, o.event_id, o.topic, o.key, o.tenant_id, o.payload, o.traceparent,
                octet_length(o.payload::text) AS bytes
         FROM ${table} o JOIN batch b ON b.id = o.id
         WHERE NOT EXISTS (
           SELECT 1 FROM ${table} e
           WHERE e.published_at IS NULL AND e.key = o.key AND e.id < o.id AND e.id NOT IN (SELECT id FROM batch))
         ORDER BY o.id`,
        [BATCH],
      );
      // One produce request stays well under a broker's message limit (1 MB by default):
      // the rest of the batch waits for the next pass, in order.
      let bytes = 0;
      for (const [i, row] of rows.entries()) {
        bytes += row.bytes;
        if (i > 0 && bytes > MAX_BATCH_BYTES) {
          rows.length = i;
          break;
        }
      }
      const records: LogRecord[] = rows.map((row) => ({
        eventId: row.event_id,
        topic: row.topic,
        key: row.key,
        tenantId: row.tenant_id,
        payload: row.payload,
        ...(row.traceparent === null ? {} : { traceparent: row.traceparent }),
      }));
      await options.eventLog.append(records);
      if (rows.length > 0) {
        await client.query(`UPDATE ${table} SET published_at = now() WHERE id = ANY($1::bigint[])`, [
          rows.map((r) => r.id),
        ]);
      }
      return rows.length;
    });
  }

  async function loop(): Promise<void> {
    // wake() stores this promise only once loop() returns. A loop that found nothing to do (woken
    // during the back-off of a failed append) would clear `running` before that store, leaving it
    // set for good: no wake would start a pass again and the outbox would stop draining.
    await Promise.resolve();
    while (wanted && Date.now() >= pausedUntil) {
      wanted = false;
      if (options.eventLog.kind === "kafka") await new Promise((resolve) => setTimeout(resolve, KAFKA_LINGER_MS));
      try {
        if ((await pass()) === BATCH) wanted = true;
        failures = 0;
      } catch (error) {
        failures++;
        pausedUntil = Date.now() + Math.min(BACKOFF_MS[1], BACKOFF_MS[0] * 2 ** (failures - 1));
        wanted = true;
        options.log.error({ err: error, failures }, "outbox relay pass failed; rows stay in the outbox");
      }
    }
    running = undefined;
  }

  async function prune(): Promise<void> {
    try {
      await options.pool.query(`DELETE FROM ${table} WHERE published_at < now() - make_interval(hours => $1)`, [
        options.retentionHours,
      ]);
      await options.onPrune?.();
    } catch (error) {
      options.log.warn({ err: error }, "outbox prune failed");
    }
  }

  const relay = {
    /** Asks for a pass soon; called right after a commit that wrote outbox rows. */
    wake(): void {
      wanted = true;
      running ??= loop();
    },
    start(): void {
      timers = [setInterval(relay.wake, options.pollIntervalMs ?? 1000), setInterval(prune, PRUNE_EVERY_MS)];
      for (const t of timers) t.unref();
      if (options.outbox)
        stopSampling = sampleOutbox({ pool: options.pool, table, outbox: options.outbox, log: options.log });
      void prune();
      relay.wake();
    },
    async stop(): Promise<void> {
      for (const t of timers) clearInterval(t);
      stopSampling();
      wanted = false;
      await running;
    },
  };
  return relay;
}
