import type { Admin, Kafka } from "kafkajs";
import { type LagSample, reportLag } from "../common/events/metrics.js";
import type { Logger } from "../common/obs/logger.js";

const SAMPLE_EVERY_MS = 10_000;

/**
 * Samples every joined group's lag (the partition's high watermark minus the
 * group's committed offset) with one admin client, every 10 s, into
 * converger_consumer_lag: the same series the in-process log reports. A
 * scrape reads the last sample and never waits on the brokers.
 */
export function sampleKafkaLag(kafka: Kafka, joined: () => Iterable<{ group: string; topic: string }>, log: Logger) {
  let samples: LagSample[] = [];
  let admin: Admin | undefined;
  let running = false;
  let warned = false;
  let stopped = false;
  const stopReporting = reportLag(() => samples);

  async function sample(): Promise<void> {
    const wanted = [...joined()];
    if (running || stopped || wanted.length === 0) return;
    running = true;
    try {
      if (!admin) {
        const fresh = kafka.admin();
        await fresh.connect();
        admin = fresh;
      }
      const next: LagSample[] = [];
      for (const { group, topic } of wanted) {
        const [ends, committed] = await Promise.all([
          admin.fetchTopicOffsets(topic),
          admin.fetchOffsets({ groupId: group, topics: [topic] }),
        ]);
        const at = new Map((committed[0]?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
        for (const end of ends) {
          // No commit yet (-1): the group starts from the beginning (fromBeginning), i.e. the low watermark.
          const position = Math.max(at.get(end.partition) ?? -1, Number(end.low));
          next.push({ group, topic, partition: String(end.partition), lag: Math.max(0, Number(end.high) - position) });
        }
      }
      samples = next;
      warned = false;
      // Stopped while this sample ran: its admin client must not outlive the log.
      if (stopped) await admin.disconnect().catch(() => undefined);
    } catch (error) {
      if (!warned) log.warn({ err: error }, "kafka consumer lag not sampled");
      warned = true;
      await admin?.disconnect().catch(() => undefined);
      admin = undefined;
    } finally {
      running = false;
    }
  }

  const timer = setInterval(() => void sample(), SAMPLE_EVERY_MS);
  timer.unref();
  return {
    /** Samples now (after a group joined), besides every 10 s. */
    sample,
    async stop(): Promise<void> {
      stopped = true;
      clearInterval(timer);
      stopReporting();
      await admin?.disconnect().catch(() => undefined);
    },
  };
}
