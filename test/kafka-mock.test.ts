import { randomUUID } from "node:crypto";
import { type Consumer, Kafka, type KafkaMessage, logLevel, Partitioners, type Producer } from "kafkajs";
import { afterEach, describe, expect, it } from "vitest";
import { type KafkaMock, startKafkaMock } from "../scripts/kafka-mock/kafka-mock.js";

const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function startMock(brokers: number): Promise<KafkaMock> {
  const mock = await startKafkaMock({ brokers });
  cleanups.push(() => mock.stop());
  return mock;
}

/** Short timeouts and few retries: the mock answers at once, so a broker that is down fails fast. */
function kafkaFor(mock: KafkaMock): Kafka {
  return new Kafka({
    clientId: "kafka-mock-test",
    brokers: mock.brokers,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 1_000,
    requestTimeout: 5_000,
    retry: { initialRetryTime: 100, maxRetryTime: 500, retries: 2 },
  });
}

async function connectProducer(kafka: Kafka): Promise<Producer> {
  const producer = kafka.producer({
    allowAutoTopicCreation: true,
    // An idempotent producer asks the controller for its id, and the mock reports controller 0, a broker it lacks.
    idempotent: false,
    // Explicit, which also silences kafkajs's warning about its v2 default.
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  await producer.connect();
  cleanups.push(() => producer.disconnect());
  return producer;
}

/** Subscribes a new consumer group from the beginning of `topic` and collects every message it receives. */
async function consumeInto(kafka: Kafka, topic: string, received: KafkaMessage[]): Promise<Consumer> {
  const consumer = kafka.consumer({
    groupId: `group-${randomUUID()}`,
    // The mock delays a rejoin by sessionTimeout - 1 s, so kafkajs's 30 s default would stall recovery.
    sessionTimeout: 3_000,
    heartbeatInterval: 300,
    // The mock holds an empty fetch for the whole wait, even when messages arrive meanwhile.
    maxWaitTimeInMs: 100,
  });
  await consumer.connect();
  cleanups.push(() => consumer.disconnect());
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      received.push(message);
    },
  });
  return consumer;
}

const text = (buffer: Buffer | null) => buffer?.toString() ?? "";

describe("kafkajs against librdkafka's mock cluster", () => {
  it("produces to an auto-created topic and consumes it as a group, in order per key", async () => {
    const mock = await startMock(3);
    expect(mock.brokers).toHaveLength(3);
    const kafka = kafkaFor(mock);
    const topic = `orders-${randomUUID()}`;
    const sent = Array.from({ length: 20 }, (_, i) => ({ key: `key-${i % 4}`, value: String(i) }));

    const producer = await connectProducer(kafka);
    await producer.send({ topic, messages: sent });
    const received: KafkaMessage[] = [];
    await consumeInto(kafka, topic, received);
    // The mock's first group join waits 3 s for more members.
    await expect
      .poll(() => received.length, { timeout: 15_000, message: "20 messages" })
      .toBeGreaterThanOrEqual(sent.length);

    const got = received.map((m) => ({ key: text(m.key), value: text(m.value) }));
    expect(got).toHaveLength(sent.length);
    // Partitions interleave freely; only messages with one key share a partition and so an order.
    const valuesOf = (messages: typeof sent, key: string) => messages.filter((m) => m.key === key).map((m) => m.value);
    for (const key of new Set(sent.map((m) => m.key))) expect(valuesOf(got, key)).toEqual(valuesOf(sent, key));
  }, 25_000);

  it("fails a send while the broker is down and delivers again once it is up", async () => {
    const mock = await startMock(1);
    const kafka = kafkaFor(mock);
    const topic = `outage-${randomUUID()}`;
    await mock.createTopic(topic, 1);
    const producer = await connectProducer(kafka);
    const received: KafkaMessage[] = [];
    await consumeInto(kafka, topic, received);
    await producer.send({ topic, messages: [{ value: "before" }] });
    await expect
      .poll(() => received.length, { timeout: 10_000, message: "the message sent before the outage" })
      .toBe(1);

    await mock.setDown(1);
    const started = Date.now();
    await expect(producer.send({ topic, messages: [{ value: "during" }] })).rejects.toThrow(/ECONNREFUSED/);
    // Two retries of at most 500 ms each.
    expect(Date.now() - started).toBeLessThan(3_000);

    await mock.setUp(1);
    await producer.send({ topic, messages: [{ value: "after" }] });
    // The consumer crashed and restarts on its own; rejoining the group takes about sessionTimeout.
    await expect.poll(() => received.length, { timeout: 15_000, message: "the message sent after the outage" }).toBe(2);
    expect(received.map((m) => text(m.value))).toEqual(["before", "after"]);
  }, 25_000);
});
