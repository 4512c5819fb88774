import { activitySeqOf, type Bus, type BusFrame } from "../common/events/bus.js";
import { createSequencer, type Sequencer } from "./sequencer.js";

interface Entry {
  topic: string;
  count: number;
  off: () => void;
  /** A conversation's activities, in seq order from where its first follower joined. */
  sequencer?: Sequencer | undefined;
}

/**
 * One bus subscription per topic that any local socket follows, turning each
 * frame over to the edge, which serializes it once for uWS pub/sub (which
 * writes it to every subscribed socket), not once per socket. All of a
 * topic's sockets share one position in its activity seqs: a socket joins
 * exactly there (stream.ts brings it there), so none gets a gap or a
 * duplicate. When frames were lost (a gap frame, or a hole that does not
 * fill), `interrupt` tells the topic's followers to resume by watermark.
 */
export function createTopicBridge(
  bus: Bus,
  out: { publish(topic: string, frame: BusFrame): void; interrupt(topic: string): void },
) {
  const entries = new Map<string, Entry>();

  const interrupt = (entry: Entry) => {
    entry.sequencer?.stop();
    entry.sequencer = undefined;
    out.interrupt(entry.topic);
  };

  const receive = (entry: Entry, frame: BusFrame) => {
    if (frame.type === "gap") return interrupt(entry);
    const seq = activitySeqOf(frame);
    if (seq === undefined) out.publish(entry.topic, frame);
    // Without a sequencer the topic's followers were interrupted: they resume from the log.
    else entry.sequencer?.push(seq, frame);
  };

  return {
    /** The seq the topic's followers have reached; undefined while it has no ordered followers. */
    position(topic: string): bigint | undefined {
      return entries.get(topic)?.sequencer?.position;
    },
    /**
     * Follows `topic`; `at` (a conversation topic's) is where the joining
     * socket stands, which must be the position if the topic has one. Returns
     * the bridge's own copy of the name, which sockets share instead of one each.
     */
    retain(topic: string, at?: bigint): string {
      let entry = entries.get(topic);
      const position = entry?.sequencer?.position;
      if (at !== undefined && position !== undefined && position !== at) {
        throw new Error(`joining ${topic} at ${at}, but its followers are at ${position}`);
      }
      if (entry) entry.count++;
      else {
        const created: Entry = { topic, count: 1, off: () => undefined };
        created.off = bus.subscribe(topic, (frame) => receive(created, frame));
        entries.set(topic, created);
        entry = created;
      }
      if (at !== undefined && position === undefined) {
        const owner = entry;
        owner.sequencer = createSequencer(at, {
          deliver: (frame) => out.publish(topic, frame),
          lost: () => interrupt(owner),
        });
      }
      return entry.topic;
    },
    release(topic: string): void {
      const entry = entries.get(topic);
      if (!entry) return;
      if (--entry.count === 0) {
        entry.off();
        entry.sequencer?.stop();
        entries.delete(topic);
      }
    },
    /** The topic's followers lost frames: they resume by watermark, and the next to join sets the position. */
    interrupt(topic: string): void {
      const entry = entries.get(topic);
      if (entry) interrupt(entry);
    },
    close(): void {
      for (const entry of entries.values()) {
        entry.off();
        entry.sequencer?.stop();
      }
      entries.clear();
    },
  };
}
