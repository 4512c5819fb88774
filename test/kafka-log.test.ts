import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { type KafkaMock, startKafkaMock } from "../scripts/kafka-mock/kafka-mock.js";
import type { EventLog, LogRecord } from "../services/common/events/event-log.js";
import { createLogger } from "../services/common/obs/logger.js";
import { createKafkaLog } from "../services/host/kafka-log.js";

// Kafka protocol numbers: the JoinGroup API, and an error kafkajs treats as final (not retriable).
const JOIN_GROUP = 11;
const GROUP_AUTHORIZATION_FAILED = 30;

let mock: KafkaMock | undefined;
let eventLog: EventLog | undefined;
afterEach(async () => {
  await eventLog?.close();
  await mock?.stop();
});

describe("the Kafka event log", () => {
  it("joins its group again after kafkajs stops a consumer for good, and consumes", async () => {
    mock = await startKafkaMock({ brokers: 1 });
    eventLog = createKafkaLog({
      brokers: mock.brokers,
      clientId: "kafka-log-test",
      idempotent: false,
      partitions: 1,
      sessionTimeoutMs: 3000,
      retryBaseMs: 10,
      log: createLogger(process.env.TEST_LOG_LEVEL ?? "silent"),
    });
    const topic = `crash-${randomUUID()}`;
    const consumed: LogRecord[] = [];
    // The first join is refused the way a broker refuses it while an ACL is missing: kafkajs gives up on it.
    await mock.failRequests(JOIN_GROUP, GROUP_AUTHORIZATION_FAILED);
    await eventLog.consume({
      group: `group-${randomUUID()}`,
      topic,
      handle: async (record) => void consumed.push(record),
      deadLetter: async () => undefined,
    });
    const record = { eventId: randomUUID(), topic, key: "k", tenantId: randomUUID(), payload: { n: 1 } };
    await eventLog.append([record]);
    await expect.poll(() => consumed.map((r) => r.eventId), { timeout: 30_000 }).toEqual([record.eventId]);
  }, 45_000);
});
