import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { type Bus, createLocalBus, decodeBusFrame, encodeBusFrame, GAP_FRAME } from "../common/events/bus.js";
import type { Logger } from "../common/obs/logger.js";
import { watchRedis } from "../common/obs/metrics.js";

const CHANNEL_PREFIX = "cvg:";

/**
 * The bus across nodes: one Redis channel per topic (a conversation or a
 * tenant feed), subscribed only while a local handler follows it, so each
 * edge receives just what its sockets need. Local subscribers get local
 * frames at once; frames from other nodes arrive through Redis (our own
 * echoes are dropped by node id), in whatever order Redis relays them: each
 * node publishes after its own commit, so seq 6 may come before seq 5, and
 * the edge puts them back in order (realtime/sequencer.ts). Publishing
 * never waits for Redis and never fails a write: while Redis is away frames
 * are dropped, and when it returns every followed topic gets a gap frame so
 * clients resume by watermark.
 */
export async function createRedisBus(url: string, log: Logger): Promise<Bus> {
  const nodeId = randomUUID();
  const local = createLocalBus((error) => log.error({ err: error }, "bus subscriber failed"));
  const followers = new Map<string, number>();
  // Per followed topic: settles when Redis has confirmed our SUBSCRIBE.
  const confirmed = new Map<string, Promise<void>>();
  // Without an offline queue a publish while Redis is down fails at once instead of piling up in memory.
  const pub = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true });
  const sub = new Redis(url, { lazyConnect: true });
  const forget = [watchRedis("bus", pub), watchRedis("bus", sub)];
  let lost = false;
  let warned = false;

  sub.on("message", (channel: string, message: string) => {
    try {
      const { n, f } = JSON.parse(message);
      const topic = channel.slice(CHANNEL_PREFIX.length);
      if (n === nodeId || !followers.has(topic)) return;
      // Decoded to check it is a frame of ours; subscribers get the JSON as it came, already public JSON.
      decodeBusFrame(f);
      local.deliver(topic, f);
    } catch (error) {
      log.warn({ err: error, channel }, "unreadable bus message");
    }
  });
  sub.on("close", () => {
    if (!lost) log.warn("lost Redis; live frames from other nodes pause until it is back");
    lost = true;
  });
  sub.on("ready", () => {
    if (!lost) return;
    lost = false;
    warned = false;
    log.info("Redis is back; asking followers to resume by watermark");
    for (const topic of followers.keys()) local.deliver(topic, GAP_FRAME);
  });
  pub.on("error", () => undefined); // reported through sub's events and failed publishes
  sub.on("error", () => undefined);
  await Promise.all([pub.connect(), sub.connect()]);

  return {
    publish(topic, frame) {
      const json = encodeBusFrame(frame);
      if (followers.has(topic)) local.deliver(topic, json);
      // Frames are not kept for later: every follower resumes by watermark once Redis is back.
      pub.publish(CHANNEL_PREFIX + topic, JSON.stringify({ n: nodeId, f: json })).catch((error: unknown) => {
        if (!warned) log.warn({ err: error }, "Redis publish failed; other nodes miss live frames until it is back");
        warned = true;
      });
    },
    subscribe(topic, handler) {
      const off = local.subscribe(topic, handler);
      const count = (followers.get(topic) ?? 0) + 1;
      followers.set(topic, count);
      if (count === 1) {
        // While Redis is away the command waits in ioredis's queue (and is redone on reconnect).
        const done = sub.subscribe(CHANNEL_PREFIX + topic).then(
          () => undefined,
          () => undefined,
        );
        confirmed.set(topic, done);
      }
      return () => {
        off();
        const left = (followers.get(topic) ?? 1) - 1;
        if (left > 0) return void followers.set(topic, left);
        followers.delete(topic);
        confirmed.delete(topic);
        sub.unsubscribe(CHANNEL_PREFIX + topic).catch(() => undefined);
      };
    },
    async whenSubscribed(topic) {
      await confirmed.get(topic);
    },
    async ready() {
      if (pub.status !== "ready") throw new Error(`redis ${pub.status}`);
      await pub.ping();
    },
    async close() {
      await local.close();
      for (const stop of forget) stop();
      pub.disconnect();
      sub.disconnect();
    },
  };
}
