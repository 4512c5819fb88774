import type { JsonValue } from "@bufbuild/protobuf";
import type { Logger } from "../obs/logger.js";
import { reportLag } from "./metrics.js";

/** One event of the log (an outbox row on its way to consumers). */
export interface LogRecord {
  eventId: string;
  topic: string;
  /** Partition key: records with one key reach a consumer in the order they were appended. */
  key: string;
  tenantId: string;
  payload: JsonValue;
  /** W3C trace context of the write that produced it, when traced. */
  traceparent?: string;
}

type RecordHandler = (record: LogRecord) => Promise<void>;

export interface Consumer {
  /** Consumer group: each group gets every record once (at least once). */
  group: string;
  topic: string;
  handle: RecordHandler;
  /**
   * Handles records in one go (one transaction instead of one per record).
   * When it fails, each record of the batch goes through `handle` on its own,
   * so one poisonous record is retried and dead-lettered alone.
   */
  handleBatch?: (records: LogRecord[]) => Promise<void>;
  /** Keeps a record the handler kept failing on; it must not throw for long (it is retried). */
  deadLetter: (record: LogRecord, error: unknown, attempts: number) => Promise<void>;
}

/**
 * The event backbone of design.md §1: the outbox relay appends committed rows,
 * consumer groups read them in per-key order, at least once. Kafka when
 * KAFKA_BROKERS is set (kafka-log.ts), otherwise in-process (below).
 */
export interface EventLog {
  readonly kind: "kafka" | "in-process";
  /** Resolves once the records are durable in the log (Kafka: acknowledged by the brokers). */
  append(records: LogRecord[]): Promise<void>;
  consume(consumer: Consumer): Promise<void>;
  ready(): Promise<void>;
  close(): Promise<void>;
}

const RETRIES = 3;
const MAX_WAIT_MS = 30_000;
// PostgreSQL: connection exceptions (08…), shutdown / cannot connect now (57P0…), too many connections.
const TRANSIENT_PG = /^(08...|57P0[1-3]|53300)$/;
const TRANSIENT_NET = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "EAI_AGAIN", "EHOSTUNREACH"]);

/** A failure of the engines around the record rather than of the record itself. */
function isTransient(error: unknown): boolean {
  if (!error || typeof error !== "object") return false;
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (typeof code === "string" && (TRANSIENT_PG.test(code) || TRANSIENT_NET.has(code))) return true;
  // ConnectError: Unavailable (14) and DeadlineExceeded (4).
  if (error instanceof Error && error.name === "ConnectError" && (code === 14 || code === 4)) return true;
  return typeof message === "string" && /Connection terminated|connection timeout|not queryable/i.test(message);
}

/**
 * Runs a consumer's handler on one record: on failure it waits base, 2×base,
 * 4×base and tries again, then hands the record to the dead-letter store, so a
 * poisonous record holds its key back for seconds, never forever, and is never
 * silently dropped. Failures of the engines around it (isTransient) are waited
 * out instead. Stops early (returns false) when `alive()` turns false.
 */
export interface ProcessOptions {
  retryBaseMs: number;
  log: Logger;
  alive?: () => boolean;
  /** Tells the log this consumer is still at work (Kafka group heartbeats) during long retries. */
  heartbeat?: () => Promise<void>;
}

async function processRecord(consumer: Consumer, record: LogRecord, options: ProcessOptions): Promise<boolean> {
  let lastError: unknown;
  for (let attempt = 1; attempt <= RETRIES + 1 || isTransient(lastError); attempt++) {
    try {
      await consumer.handle(record);
      return true;
    } catch (error) {
      lastError = error;
      options.log.warn({ err: error, eventId: record.eventId, group: consumer.group, attempt }, "event failed");
      // An engine that is away (database failover, network) is waited for: the record is not at fault.
      if (attempt <= RETRIES || isTransient(error)) {
        await sleep(Math.min(MAX_WAIT_MS, options.retryBaseMs * 2 ** Math.min(attempt - 1, 10)));
      }
      await options.heartbeat?.().catch(() => undefined);
      if (options.alive && !options.alive()) return false;
    }
  }
  for (let tries = 0; ; tries++) {
    try {
      await consumer.deadLetter(record, lastError, RETRIES + 1);
      return true;
    } catch (error) {
      // Losing the record is not an option: keep trying, slowly, while running.
      options.log.error({ err: error, eventId: record.eventId }, "dead-lettering failed; retrying");
      await sleep(Math.min(MAX_WAIT_MS, options.retryBaseMs * 2 ** Math.min(tries, 5)));
      await options.heartbeat?.().catch(() => undefined);
      if (options.alive && !options.alive()) return false;
    }
  }
}

/** Runs a batch through handleBatch, or record by record (see Consumer.handleBatch); false when stopped early. */
export async function processBatch(
  consumer: Consumer,
  records: LogRecord[],
  options: ProcessOptions,
): Promise<boolean> {
  if (records.length === 0) return true;
  if (consumer.handleBatch && records.length > 1) {
    try {
      await consumer.handleBatch(records);
      return true;
    } catch (error) {
      options.log.warn({ err: error, group: consumer.group, records: records.length }, "batch failed; one by one");
    }
  }
  for (const record of records) {
    if (!(await processRecord(consumer, record, options))) return false;
  }
  return true;
}

/**
 * The log without Kafka: append hands records straight to this process's
 * consumers and resolves once they processed them (or dead-lettered them), so
 * the relay marks a row published only after that.
 */
export function createInProcessLog(options: { retryBaseMs: number; log: Logger }): EventLog {
  const consumers: Consumer[] = [];
  // Records appended and not yet processed, per consumer: its lag on the one "partition" of this log.
  const pending = new Map<Consumer, number>();
  const stopReporting = reportLag(() =>
    consumers.map((c) => ({ group: c.group, topic: c.topic, partition: "0", lag: pending.get(c) ?? 0 })),
  );
  const addPending = (consumer: Consumer, n: number) => pending.set(consumer, (pending.get(consumer) ?? 0) + n);
  let open = true;
  return {
    kind: "in-process",
    async append(records) {
      const batches = consumers.map((consumer) => records.filter((record) => record.topic === consumer.topic));
      const settle = (i: number) => addPending(consumers[i] as Consumer, -(batches[i] as LogRecord[]).length);
      for (const [i, batch] of batches.entries()) addPending(consumers[i] as Consumer, batch.length);
      let settled = 0;
      try {
        while (settled < batches.length) {
          const i = settled++;
          const mine = batches[i] as LogRecord[];
          const ok = await processBatch(consumers[i] as Consumer, mine, { ...options, alive: () => open }).finally(() =>
            settle(i),
          );
          if (!ok) throw new Error("event log closed while processing");
        }
      } finally {
        for (let i = settled; i < batches.length; i++) settle(i);
      }
    },
    async consume(consumer) {
      if (consumers.some((c) => c.group === consumer.group && c.topic === consumer.topic)) {
        throw new Error(`group ${consumer.group} already consumes ${consumer.topic} here`);
      }
      consumers.push(consumer);
    },
    async ready() {},
    async close() {
      open = false;
      stopReporting();
    },
  };
}

/**
 * Joins a consumer group, retrying (1 s, 2 s, … up to 30 s) until it works or
 * `stopped()`: an unreachable Kafka at start does not leave a consumer out for good.
 */
export async function joinUntilDone(log: EventLog, consumer: Consumer, logger: Logger, stopped: () => boolean) {
  for (let tries = 1; !stopped(); tries++) {
    try {
      return await log.consume(consumer);
    } catch (error) {
      logger.error({ err: error, tries, group: consumer.group }, "cannot join the consumer group; retrying");
      await sleep(Math.min(30_000, 1_000 * tries));
    }
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
