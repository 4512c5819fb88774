/**
 * Live push of committed changes to subscribers (design.md §5). In one process
 * it is this in-memory bus; with REDIS_URL, a Redis-backed bus with the same
 * shape fans out across nodes. Delivery is best effort: the stored log is the
 * truth and clients recover gaps by watermark.
 */
export interface Bus {
  /** Publishes a frame already rendered as public JSON. */
  publish(topic: string, frame: BusFrame): void;
  subscribe(topic: string, handler: (frame: BusFrame) => void): () => void;
  /**
   * Resolves once frames published anywhere on `topic` reach this node's
   * subscribers (immediately in-process; after Redis confirms SUBSCRIBE).
   * A stream reads its starting watermark only after this, so that nothing
   * committed later can slip past both the read and the live feed.
   */
  whenSubscribed(topic: string): Promise<void>;
  /** Throws when the engine behind the bus is unreachable (for /readyz). */
  ready(): Promise<void>;
  close(): Promise<void>;
}

/** One frame of design.md §4, e.g. `{type:"activity", activity:{…}}`. */
export type BusFrame = { type: string } & Record<string, unknown>;

export const conversationTopic = (conversationId: string) => `conversation:${conversationId}`;
export const tenantTopic = (tenantId: string) => `tenant:${tenantId}`;

export function createLocalBus(onError: (error: unknown) => void): Bus {
  const handlers = new Map<string, Set<(frame: BusFrame) => void>>();
  return {
    publish(topic, frame) {
      for (const handler of handlers.get(topic) ?? []) {
        try {
          handler(frame);
        } catch (error) {
          onError(error); // one broken subscriber must not starve the others
        }
      }
    },
    subscribe(topic, handler) {
      const set = handlers.get(topic) ?? new Set();
      handlers.set(topic, set);
      set.add(handler);
      return () => {
        set.delete(handler);
        if (set.size === 0) handlers.delete(topic);
      };
    },
    async whenSubscribed() {},
    async ready() {},
    async close() {
      handlers.clear();
    },
  };
}
