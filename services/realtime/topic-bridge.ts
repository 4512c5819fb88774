import type { Bus, BusFrame } from "../common/events/bus.js";

/**
 * One bus subscription per topic that any local socket follows, turning each
 * frame over to the edge, which serializes it once for uWS pub/sub (which
 * writes it to every subscribed socket), not once per socket.
 */
export function createTopicBridge(bus: Bus, publish: (topic: string, frame: BusFrame) => void) {
  const topics = new Map<string, { topic: string; count: number; off: () => void }>();
  return {
    /** Follows `topic`; returns the bridge's own copy of the name, which sockets share instead of one each. */
    retain(topic: string): string {
      const entry = topics.get(topic);
      if (entry) {
        entry.count++;
        return entry.topic;
      }
      topics.set(topic, { topic, count: 1, off: bus.subscribe(topic, (frame) => publish(topic, frame)) });
      return topic;
    },
    release(topic: string): void {
      const entry = topics.get(topic);
      if (!entry) return;
      if (--entry.count === 0) {
        entry.off();
        topics.delete(topic);
      }
    },
    close(): void {
      for (const entry of topics.values()) entry.off();
      topics.clear();
    },
  };
}
