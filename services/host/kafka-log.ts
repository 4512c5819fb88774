import { CompressionTypes, Kafka, type Consumer as KafkaConsumer, logLevel, type Producer } from "kafkajs";
import {
  type Consumer,
  type EventLog,
  joinUntilDone,
  type LogRecord,
  processBatch,
} from "../common/events/event-log.js";
import type { Logger } from "../common/obs/logger.js";
import { sampleKafkaLag } from "./kafka-lag.js";

export interface KafkaLogOptions {
  brokers: string[];
  clientId: string;
  /** Idempotent producer; the librdkafka mock broker of the tests cannot serve its handshake. */
  idempotent: boolean;
  /** Partitions of topics we create where the broker allows admin calls. */
  partitions: number;
  sessionTimeoutMs: number;
  retryBaseMs: number;
  log: Logger;
}

const PARTITIONS_IN_PARALLEL = 8;
// Records handed to a consumer's handleBatch at once.
const MAX_BATCH = 500;
const HEADER_EVENT_ID = "event_id";
const HEADER_TENANT_ID = "tenant_id";
const HEADER_TRACEPARENT = "traceparent";
// Waits before a group stopped by kafkajs joins again: doubling per crash in a row, up to the cap.
const REJOIN_MS = [1_000, 30_000] as const;

/**
 * The event log on Kafka (kafkajs): records keyed by their partition key
 * (conversation id), acks from all in-sync replicas, event id, tenant and
 * traceparent as headers. Consumers commit an offset only after the record was
 * processed or dead-lettered, so a crash replays it (consumers dedupe by event id).
 */
export function createKafkaLog(options: KafkaLogOptions): EventLog {
  const { log } = options;
  const kafka = new Kafka({
    clientId: options.clientId,
    brokers: options.brokers,
    logLevel: logLevel.ERROR,
    logCreator: () => (entry) => log.warn({ kafka: entry.namespace, ...entry.log }, "kafka"),
    retry: { initialRetryTime: 200, retries: 5 },
  });
  let producer: Producer | undefined;
  let connecting: Promise<Producer> | undefined;
  const consumers = new Set<KafkaConsumer>();
  // Crashes in a row per group; a successful join resets it.
  const crashes = new Map<string, number>();
  const createdTopics = new Set<string>();
  const joined = new Map<string, { group: string; topic: string }>();
  const lag = sampleKafkaLag(kafka, () => joined.values(), log);
  let open = true;

  async function connectedProducer(): Promise<Producer> {
    if (producer) return producer;
    connecting ??= (async () => {
      const p = kafka.producer({
        idempotent: options.idempotent,
        maxInFlightRequests: options.idempotent ? 5 : 1,
        allowAutoTopicCreation: true,
      });
      p.on(p.events.DISCONNECT, () => {
        if (producer === p) producer = undefined;
      });
      await p.connect();
      producer = p;
      return p;
    })().finally(() => {
      connecting = undefined;
    });
    return connecting;
  }

  /** Creates a topic with our partition count; brokers without admin support auto-create instead. */
  async function ensureTopic(topic: string): Promise<void> {
    if (createdTopics.has(topic)) return;
    const admin = kafka.admin();
    try {
      await admin.connect();
      await admin.createTopics({ topics: [{ topic, numPartitions: options.partitions }], waitForLeaders: true });
    } catch (error) {
      log.debug({ err: error, topic }, "topic not created here; relying on auto-creation");
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
    createdTopics.add(topic);
  }

  /**
   * kafkajs restarts a crashed consumer only after a retriable error; after any other (the
   * broker denies the group, a protocol error it deems final) the consumer stays stopped for good
   * and its partitions are never read again. Join afresh instead, slower after each crash in a row.
   */
  function rejoinAfterCrash(kafkaConsumer: KafkaConsumer, consumer: Consumer) {
    kafkaConsumer.on(kafkaConsumer.events.GROUP_JOIN, () => crashes.delete(consumer.group));
    kafkaConsumer.on(kafkaConsumer.events.CRASH, async ({ payload }) => {
      if (payload.restart || !open) return;
      consumers.delete(kafkaConsumer);
      const count = (crashes.get(consumer.group) ?? 0) + 1;
      crashes.set(consumer.group, count);
      const waitMs = Math.min(REJOIN_MS[1], REJOIN_MS[0] * 2 ** (count - 1));
      log.error(
        { err: payload.error, group: consumer.group, waitMs },
        "kafka consumer stopped; joining the group again",
      );
      await new Promise((resolve) => setTimeout(resolve, waitMs).unref());
      await joinUntilDone(eventLog, consumer, log, () => !open);
    });
  }

  const eventLog: EventLog = {
    kind: "kafka",
    async append(records: LogRecord[]) {
      if (records.length === 0) return;
      const p = await connectedProducer();
      const byTopic = new Map<string, LogRecord[]>();
      for (const record of records) byTopic.set(record.topic, [...(byTopic.get(record.topic) ?? []), record]);
      await p.sendBatch({
        acks: -1,
        compression: CompressionTypes.None,
        topicMessages: [...byTopic].map(([topic, list]) => ({
          topic,
          messages: list.map((record) => ({
            key: record.key,
            value: JSON.stringify(record.payload),
            headers: {
              [HEADER_EVENT_ID]: record.eventId,
              [HEADER_TENANT_ID]: record.tenantId,
              ...(record.traceparent ? { [HEADER_TRACEPARENT]: record.traceparent } : {}),
            },
          })),
        })),
      });
    },
    async consume(consumer: Consumer) {
      await ensureTopic(consumer.topic);
      const kafkaConsumer = kafka.consumer({
        groupId: consumer.group,
        allowAutoTopicCreation: true,
        sessionTimeout: options.sessionTimeoutMs,
        heartbeatInterval: Math.max(100, Math.floor(options.sessionTimeoutMs / 10)),
        // Real brokers answer a fetch as soon as data arrives; this only bounds an idle one.
        maxWaitTimeInMs: 250,
      });
      consumers.add(kafkaConsumer);
      rejoinAfterCrash(kafkaConsumer, consumer);
      await kafkaConsumer.connect();
      await kafkaConsumer.subscribe({ topic: consumer.topic, fromBeginning: true });
      await kafkaConsumer.run({
        autoCommit: true,
        // Order is per key, hence per partition: partitions can be worked side by side.
        partitionsConsumedConcurrently: PARTITIONS_IN_PARALLEL,
        eachBatchAutoResolve: false,
        eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
          for (let from = 0; from < batch.messages.length; from += MAX_BATCH) {
            const messages = batch.messages.slice(from, from + MAX_BATCH);
            const records: LogRecord[] = [];
            for (const message of messages) {
              const record = recordOf(batch.topic, message);
              if (record) records.push(record);
              else log.error({ topic: batch.topic, offset: message.offset }, "record without event id or JSON body");
            }
            const done = await processBatch(consumer, records, {
              retryBaseMs: options.retryBaseMs,
              log,
              alive: () => open,
              heartbeat,
            });
            // Not processed because we are stopping: the offsets stay uncommitted and the records come again.
            if (!done) throw new Error("stopping before the records were processed");
            for (const message of messages) resolveOffset(message.offset);
            await heartbeat();
          }
        },
      });
      joined.set(`${consumer.group}\u0000${consumer.topic}`, { group: consumer.group, topic: consumer.topic });
      void lag.sample();
    },
    async ready() {
      await connectedProducer();
    },
    async close() {
      open = false;
      await lag.stop();
      await Promise.all([...consumers].map((c) => c.disconnect().catch(() => undefined)));
      await producer?.disconnect().catch(() => undefined);
    },
  };
  return eventLog;
}

function recordOf(
  topic: string,
  message: { key: Buffer | null; value: Buffer | null; headers?: Record<string, unknown> },
): LogRecord | undefined {
  const header = (name: string) => {
    const value = message.headers?.[name];
    return Buffer.isBuffer(value) ? value.toString("utf8") : typeof value === "string" ? value : undefined;
  };
  const eventId = header(HEADER_EVENT_ID);
  if (!eventId || !message.value) return undefined;
  const traceparent = header(HEADER_TRACEPARENT);
  try {
    return {
      eventId,
      topic,
      key: message.key?.toString("utf8") ?? "",
      tenantId: header(HEADER_TENANT_ID) ?? "",
      payload: JSON.parse(message.value.toString("utf8")),
      ...(traceparent === undefined ? {} : { traceparent }),
    };
  } catch {
    return undefined;
  }
}
