import type { JsonValue } from "@bufbuild/protobuf";
import type { Pool } from "../common/db/pool.js";
import type { Logger } from "../common/logger.js";

/** One relayed outbox row, as consumers receive it. */
export interface OutboxMessage {
  eventId: string;
  topic: string;
  /** Partition key: messages with one key arrive in the order they were written. */
  key: string;
  tenantId: string;
  payload: JsonValue;
}

export type OutboxConsumer = (message: OutboxMessage) => Promise<void> | void;

export interface OutboxRelayOptions {
  pool: Pool;
  log: Logger;
  retentionHours: number;
  /** Fallback poll for rows written by other processes. */
  pollIntervalMs?: number;
}

// Only one relay in the cluster works at a time, which keeps the outbox order.
const RELAY_LOCK_KEY = 7_310_042_002;
const BATCH = 500;
const PRUNE_EVERY_MS = 10 * 60 * 1000;

/**
 * Relays committed outbox rows to consumers at least once, in id order (so in
 * per-conversation order), marking them published only after every consumer
 * took them. A consumer that throws holds the row back for the next pass;
 * consumers must therefore be idempotent on eventId.
 */
export function createOutboxRelay(options: OutboxRelayOptions) {
  const consumers = new Map<string, Set<OutboxConsumer>>();
  let wanted = false;
  let running: Promise<void> | undefined;
  let timers: NodeJS.Timeout[] = [];

  async function pass(): Promise<number> {
    const client = await options.pool.connect();
    try {
      await client.query("BEGIN");
      const lock = await client.query<{ ok: boolean }>("SELECT pg_try_advisory_xact_lock($1) AS ok", [RELAY_LOCK_KEY]);
      if (!lock.rows[0]?.ok) {
        await client.query("COMMIT");
        return 0;
      }
      const { rows } = await client.query<{
        id: string;
        event_id: string;
        topic: string;
        key: string;
        tenant_id: string;
        payload: JsonValue;
      }>(
        `SELECT id, event_id, topic, key, tenant_id, payload FROM outbox
         WHERE published_at IS NULL ORDER BY id LIMIT $1`,
        [BATCH],
      );
      const done: string[] = [];
      for (const row of rows) {
        const message = {
          eventId: row.event_id,
          topic: row.topic,
          key: row.key,
          tenantId: row.tenant_id,
          payload: row.payload,
        };
        try {
          for (const consumer of consumers.get(row.topic) ?? []) await consumer(message);
        } catch (error) {
          options.log.error(
            { err: error, eventId: row.event_id, topic: row.topic },
            "outbox consumer failed; will retry",
          );
          break;
        }
        done.push(row.id);
      }
      if (done.length > 0)
        await client.query("UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])", [done]);
      await client.query("COMMIT");
      return rows.length === BATCH && done.length === BATCH ? done.length : 0;
    } catch (error) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  async function loop(): Promise<void> {
    while (wanted) {
      wanted = false;
      try {
        if ((await pass()) > 0) wanted = true;
      } catch (error) {
        options.log.error({ err: error }, "outbox relay pass failed");
      }
    }
    running = undefined;
  }

  async function prune(): Promise<void> {
    try {
      await options.pool.query("DELETE FROM outbox WHERE published_at < now() - make_interval(hours => $1)", [
        options.retentionHours,
      ]);
      await options.pool.query("DELETE FROM idempotency_keys WHERE expires_at < now()");
    } catch (error) {
      options.log.warn({ err: error }, "outbox prune failed");
    }
  }

  const relay = {
    subscribe(topic: string, consumer: OutboxConsumer): () => void {
      const set = consumers.get(topic) ?? new Set();
      consumers.set(topic, set);
      set.add(consumer);
      return () => void set.delete(consumer);
    },
    /** Asks for a pass soon; called right after a commit that wrote outbox rows. */
    wake(): void {
      wanted = true;
      running ??= loop();
    },
    start(): void {
      timers = [setInterval(relay.wake, options.pollIntervalMs ?? 1000), setInterval(prune, PRUNE_EVERY_MS)];
      for (const t of timers) t.unref();
      void prune();
      relay.wake();
    },
    async stop(): Promise<void> {
      for (const t of timers) clearInterval(t);
      wanted = false;
      await running;
    },
  };
  return relay;
}

export type OutboxRelay = ReturnType<typeof createOutboxRelay>;
