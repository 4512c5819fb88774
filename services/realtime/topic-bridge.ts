import type { Bus } from "../common/bus.js";

/**
 * One bus subscription per topic that any local socket follows, turning each
 * frame into one JSON string handed to uWS pub/sub (which writes it to every
 * subscribed socket): serialization happens once per message, not per socket.
 */
export function createTopicBridge(bus: Bus, publish: (topic: string, json: string) => void) {
  const topics = new Map<string, { count: number; off: () => void }>();
  return {
    retain(topic: string): void {
      const entry = topics.get(topic);
      if (entry) {
        entry.count++;
        return;
      }
      topics.set(topic, { count: 1, off: bus.subscribe(topic, (frame) => publish(topic, JSON.stringify(frame))) });
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
