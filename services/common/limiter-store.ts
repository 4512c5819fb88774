import { Redis } from "ioredis";
import { type RateLimiterAbstract, RateLimiterMemory, RateLimiterRedis } from "rate-limiter-flexible";
import type { Logger } from "./logger.js";
import { rateLimitFallbacksTotal } from "./metrics.js";

/**
 * Where rate-limit counters live (rate-limiter-flexible): Redis when
 * REDIS_URL is set, so every process of a deployment enforces one limit;
 * this process's memory otherwise. A Redis that goes away never fails a
 * call: each limiter falls back to an in-memory insurance limiter with the
 * same settings (logged once per outage, counted by
 * converger_rate_limit_fallbacks_total) until Redis is ready again.
 */
export interface LimiterStore {
  /**
   * A fixed window of `points` per `durationSeconds` per key. Limiters of one
   * `name` and duration share their counters whatever their points, so a
   * tenant whose own limit changes keeps its count.
   */
  limiter(name: string, points: number, durationSeconds: number): RateLimiterAbstract;
  close(): Promise<void>;
}

const KEY_PREFIX = "cvg:rl";

export function createMemoryLimiterStore(): LimiterStore {
  const cache = new Map<string, RateLimiterAbstract>();
  return {
    limiter(name, points, durationSeconds) {
      const id = `${name}:${durationSeconds}:${points}`;
      let limiter = cache.get(id);
      if (!limiter) {
        limiter = new RateLimiterMemory({
          keyPrefix: `${KEY_PREFIX}:${name}:${durationSeconds}`,
          points,
          duration: durationSeconds,
        });
        cache.set(id, limiter);
      }
      return limiter;
    },
    async close() {},
  };
}

export function createRedisLimiterStore(url: string, log: Logger): LimiterStore {
  // No offline queue: while Redis is away a call is answered by the insurance limiter at once, never queued.
  const client = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
  let degraded = false;
  const onFallback = () => {
    if (degraded) return;
    degraded = true;
    log.warn("rate limits: Redis unreachable, counting in this process's memory until it is back");
  };
  client.on("error", () => undefined); // reported through onFallback when a limit is checked
  client.on("ready", () => {
    if (!degraded) return;
    degraded = false;
    log.info("rate limits: Redis is back, counters are shared again");
  });
  const cache = new Map<string, RateLimiterAbstract>();
  return {
    limiter(name, points, durationSeconds) {
      const id = `${name}:${durationSeconds}:${points}`;
      let limiter = cache.get(id);
      if (!limiter) {
        const keyPrefix = `${KEY_PREFIX}:${name}:${durationSeconds}`;
        limiter = new RateLimiterRedis({
          storeClient: client,
          keyPrefix,
          points,
          duration: durationSeconds,
          rejectIfRedisNotReady: true,
          insuranceLimiter: new InsuranceLimiter({ keyPrefix, points, duration: durationSeconds }, name, onFallback),
        });
        cache.set(id, limiter);
      }
      return limiter;
    },
    async close() {
      client.disconnect();
    },
  };
}

/** The in-memory stand-in of a Redis limiter; every call it answers is counted. */
class InsuranceLimiter extends RateLimiterMemory {
  constructor(
    options: ConstructorParameters<typeof RateLimiterMemory>[0],
    private readonly limiterName: string,
    private readonly onFallback: () => void,
  ) {
    super(options);
  }

  override consume(...args: Parameters<RateLimiterMemory["consume"]>) {
    rateLimitFallbacksTotal.inc({ limiter: this.limiterName });
    this.onFallback();
    return super.consume(...args);
  }
}
