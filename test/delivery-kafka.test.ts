import { Kafka, logLevel } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type KafkaMock, startKafkaMock } from "../scripts/kafka-mock/kafka-mock.js";
import { call, fixtures, startTestApp, type TestApp } from "./helpers/app.js";
import { startHttpSink } from "./helpers/http-sink.js";

// The outbox relayed through a real Kafka-protocol broker (librdkafka's mock cluster).
let kafka: KafkaMock;
let t: TestApp;
let key: string;
let f: ReturnType<typeof fixtures>;
beforeAll(async () => {
  kafka = await startKafkaMock({ brokers: 1 });
  t = await startTestApp({
    KAFKA_BROKERS: kafka.brokers.join(","),
    // The mock cannot serve the idempotent producer's handshake (see scripts/kafka-mock).
    KAFKA_IDEMPOTENT: "false",
    KAFKA_SESSION_TIMEOUT_MS: "3000",
    WEBHOOK_ALLOW_PRIVATE: "true",
    DELIVERY_BACKOFF_BASE_MS: "20",
  });
  f = fixtures(t.baseUrl);
  key = (await f.tenant()).key;
}, 60_000);
afterAll(async () => {
  await t?.stop();
  await kafka?.stop();
});

const unpublished = async (conversationId: string) =>
  (await t.db.query("SELECT count(*)::int AS n FROM outbox WHERE key = $1 AND published_at IS NULL", [conversationId]))
    .rows[0].n as number;

/** Resolves once an append to the log carrying a record keyed `key` has failed. */
function failedAppendOf(key: string): Promise<void> {
  const log = t.app.eventLog;
  const append = log.append;
  return new Promise((resolve) => {
    log.append = async (records) => {
      try {
        await append.call(log, records);
      } catch (error) {
        if (records.some((r) => r.key === key)) {
          log.append = append;
          resolve();
        }
        throw error;
      }
    };
  });
}

describe("delivery through Kafka", () => {
  it("relays activities through the broker and delivers them in seq order", async () => {
    expect(t.app.eventLog.kind).toBe("kafka");
    const sink = await startHttpSink();
    try {
      const channel = await f.channel(key, "webhook", { url: sink.url });
      const { id } = await f.conversation(key, channel.id);
      for (let i = 1; i <= 5; i++) expect((await f.message(key, id, `k${i}`)).status).toBe(201);
      await expect.poll(() => sink.requests.length, { timeout: 30_000 }).toBe(5);
      expect(sink.json<{ activity: { seq: string } }>().map((b) => b.activity.seq)).toEqual(["1", "2", "3", "4", "5"]);
      expect(await unpublished(id)).toBe(0);
    } finally {
      await sink.close();
    }
  }, 60_000);

  it("keeps answering 201 while the broker is down and delivers everything in order once it is back", async () => {
    const sink = await startHttpSink();
    try {
      const channel = await f.channel(key, "webhook", { url: sink.url });
      const { id } = await f.conversation(key, channel.id);
      await kafka.setDown(1);
      const refused = failedAppendOf(id);
      for (let i = 1; i <= 10; i++) expect((await f.message(key, id, `d${i}`)).status).toBe(201);
      // The relay has tried the broker with these rows and been refused: they stay in the outbox.
      await refused;
      expect(await unpublished(id)).toBeGreaterThan(0);
      expect(sink.requests).toHaveLength(0);
      await kafka.setUp(1);
      await expect.poll(() => sink.requests.length, { timeout: 45_000 }).toBe(10);
      expect(sink.json<{ activity: { seq: string } }>().map((b) => Number(b.activity.seq))).toEqual(
        Array.from({ length: 10 }, (_, i) => i + 1),
      );
      expect(await unpublished(id)).toBe(0);
    } finally {
      await sink.close();
    }
  }, 90_000);

  it("delivers once when an acknowledged event is published again", async () => {
    const sink = await startHttpSink();
    try {
      const channel = await f.channel(key, "webhook", { url: sink.url });
      const { id } = await f.conversation(key, channel.id);
      await f.message(key, id, "only once");
      await expect.poll(() => sink.requests.length, { timeout: 30_000 }).toBe(1);
      // A relay killed after the broker's ack and before its UPDATE leaves the row unpublished.
      await t.db.query("UPDATE outbox SET published_at = NULL WHERE key = $1", [id]);
      await expect.poll(() => unpublished(id), { timeout: 30_000 }).toBe(0);
      // The sentinel follows the republished record in the conversation's partition: once it is
      // delivered, a duplicate of the first would have been too.
      await f.message(key, id, "sentinel");
      await expect.poll(() => sink.requests.length, { timeout: 30_000 }).toBeGreaterThanOrEqual(2);
      expect(sink.json<{ activity: { text: string } }>().map((b) => b.activity.text)).toEqual([
        "only once",
        "sentinel",
      ]);
    } finally {
      await sink.close();
    }
  }, 60_000);
});

describe("records on the topic", () => {
  it("are keyed by conversation and carry the event id, the tenant and the writer's traceparent", async () => {
    const channel = await f.channel(key, "websocket");
    const { id } = await f.conversation(key, channel.id);
    const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const posted = await call(t.baseUrl, "POST", `/v1/conversations/${id}/activities`, {
      key,
      headers: { traceparent },
      body: { type: "message", text: "traced", from: { id: "u" } },
    });
    expect(posted.status).toBe(201);
    const kafkaClient = new Kafka({ brokers: kafka.brokers, logLevel: logLevel.NOTHING });
    const consumer = kafkaClient.consumer({
      groupId: `probe-${id}`,
      sessionTimeout: 3000,
      heartbeatInterval: 300,
      maxWaitTimeInMs: 100,
    });
    try {
      await consumer.connect();
      await consumer.subscribe({ topic: "converger.activities", fromBeginning: true });
      const found = new Promise<{ key: string; headers: Record<string, string> }>((resolve) => {
        void consumer.run({
          eachMessage: async ({ message }) => {
            if (message.key?.toString() !== id) return;
            const headers = Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)]));
            resolve({ key: message.key.toString(), headers });
          },
        });
      });
      const record = await Promise.race([
        found,
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error("no record")), 30_000)),
      ]);
      const outbox = await t.db.query("SELECT event_id, tenant_id FROM outbox WHERE key = $1", [id]);
      expect(record.headers).toEqual({
        event_id: outbox.rows[0].event_id,
        tenant_id: outbox.rows[0].tenant_id,
        traceparent,
      });
    } finally {
      await consumer.disconnect();
    }
  }, 60_000);
});
