import { Redis } from "ioredis";
import { type RateLimiterAbstract, RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import type { Logger } from "../obs/logger.js";
import { rateLimitFallbacksTotal, watchRedis } from "../obs/metrics.js";

/**
 * Where rate-limit counters live (rate-limiter-flexible): Redis when
 * REDIS_URL is set, so every process of a deployment enforces one limit;
 * this process's memory otherwise. A Redis that goes away never fails a
 * call: each counter falls back to an in-memory insurance limiter (logged
 * once per outage, counted by converger_rate_limit_fallbacks_total) until
 * Redis is ready again.
 */
export interface LimiterStore {
  /**
   * A fixed window of `points` per `durationSeconds` per key. Limiters of one
   * `name` and duration share their counters whatever their points, so a
   * tenant whose own limit changes keeps its count.
   */
  limiter(name: string, points: number, durationSeconds: number): Limiter;
  /** The raw count of `name`'s windows, for callers that compare it to quotas of their own. */
  counter(name: string, durationSeconds: number): Limiter;
  close(): Promise<void>;
}

/** Resolves with the window's count (`consumedPoints`); a limiter rejects with a RateLimiterRes once it is spent. */
interface Limiter {
  consume(key: string): Promise<RateLimiterRes>;
  /** Gives back a point counted by a call that was refused elsewhere. */
  reward(key: string): Promise<unknown>;
}

const KEY_PREFIX = "cvg:rl";
const COMMAND_TIMEOUT_MS = 250;
// The shared counters never refuse by themselves: each limiter compares the count to its own points.
const UNBOUNDED = Number.MAX_SAFE_INTEGER;

export function createMemoryLimiterStore(): LimiterStore {
  return createStore((keyPrefix, duration) => new RateLimiterMemory({ keyPrefix, points: UNBOUNDED, duration }));
}

export function createRedisLimiterStore(url: string, log: Logger): LimiterStore {
  // No offline queue: while Redis is away a call is answered by the insurance limiter at once, never queued.
  // A Redis that stops answering (a partition, not a refused connection) must not hold calls up either.
  const client = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: COMMAND_TIMEOUT_MS,
  });
  const forget = watchRedis("limits", client);
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
  const store = createStore(
    (keyPrefix, duration, name) =>
      new RateLimiterRedis({
        storeClient: client,
        keyPrefix,
        points: UNBOUNDED,
        duration,
        rejectIfRedisNotReady: true,
        insuranceLimiter: new InsuranceLimiter({ keyPrefix, points: UNBOUNDED, duration }, name, onFallback),
      }),
  );
  return {
    ...store,
    async close() {
      forget();
      client.disconnect();
    },
  };
}

function createStore(counterFor: (keyPrefix: string, duration: number, name: string) => RateLimiterAbstract) {
  const counters = new Map<string, RateLimiterAbstract>();
  const counter = (name: string, durationSeconds: number): RateLimiterAbstract & Limiter => {
    const id = `${name}:${durationSeconds}`;
    let found = counters.get(id);
    if (!found) {
      found = counterFor(`${KEY_PREFIX}:${id}`, durationSeconds, name);
      counters.set(id, found);
    }
    return found as RateLimiterAbstract & Limiter;
  };
  return {
    counter,
    limiter: (name: string, points: number, durationSeconds: number) =>
      withQuota(counter(name, durationSeconds), points),
    async close() {},
  };
}

function withQuota(counter: RateLimiterAbstract, points: number): Limiter {
  return {
    reward: (key) => counter.reward(key),
    async consume(key) {
      const counted = await counter.consume(key);
      const remaining = points - counted.consumedPoints;
      const res = new RateLimiterRes(Math.max(0, remaining), counted.msBeforeNext, counted.consumedPoints);
      if (remaining < 0) throw res;
      return res;
    },
  };
}

/** The in-memory stand-in of a Redis counter; every call it answers is counted. */
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
