import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { type KafkaMock, startKafkaMock } from "../scripts/kafka-mock/kafka-mock.js";
import type { EventLog } from "../services/common/events/event-log.js";
import { createLogger } from "../services/common/obs/logger.js";
import { metrics } from "../services/common/obs/metrics.js";
import { createKafkaLog } from "../services/host/kafka-log.js";
import { parseMetrics, sampleValue } from "./helpers/prometheus.js";

let mock: KafkaMock | undefined;
let eventLog: EventLog | undefined;
afterEach(async () => {
  await eventLog?.close();
  await mock?.stop();
});

const lagOf = async (group: string, topic: string) =>
  sampleValue(parseMetrics(await metrics.metrics()), "converger_consumer_lag", { group, topic, partition: "0" });

describe("consumer lag with Kafka", () => {
  it("reports records a group has not consumed yet, per partition, and 0 once it caught up", async () => {
    mock = await startKafkaMock({ brokers: 1 });
    eventLog = createKafkaLog({
      brokers: mock.brokers,
      clientId: "kafka-lag-test",
      idempotent: false,
      partitions: 1,
      sessionTimeoutMs: 3000,
      retryBaseMs: 10,
      log: createLogger(process.env.TEST_LOG_LEVEL ?? "silent"),
    });
    const topic = `lag-${randomUUID()}`;
    const group = `group-${randomUUID()}`;
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let handled = 0;
    await eventLog.consume({
      group,
      topic,
      handle: async () => {
        await held;
        handled++;
      },
      deadLetter: async () => undefined,
    });
    const records = [1, 2, 3].map((n) => ({
      eventId: randomUUID(),
      topic,
      key: "k",
      tenantId: randomUUID(),
      payload: { n },
    }));
    await eventLog.append(records);
    await expect.poll(() => lagOf(group, topic), { timeout: 25_000, interval: 500 }).toBe(3);
    release();
    await expect.poll(() => handled, { timeout: 10_000 }).toBe(3);
    await expect.poll(() => lagOf(group, topic), { timeout: 25_000, interval: 500 }).toBe(0);
  }, 60_000);
});
