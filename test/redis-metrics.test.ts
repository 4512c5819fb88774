import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisLimiterStore } from "../services/common/access/limiter-store.js";
import type { Bus } from "../services/common/events/bus.js";
import { createLogger } from "../services/common/obs/logger.js";
import { metrics } from "../services/common/obs/metrics.js";
import { createRedisBus } from "../services/host/redis-bus.js";
import { freePort } from "./helpers/process.js";
import { parseMetrics, sampleValue } from "./helpers/prometheus.js";
import { type RedisServer, startRedis } from "./helpers/redis.js";

const log = createLogger(process.env.TEST_LOG_LEVEL ?? "silent");
let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis(await freePort());
});
afterAll(() => redis?.stop());

const upOf = async (client: string) =>
  sampleValue(parseMetrics(await metrics.metrics()), "converger_redis_up", { client });

describe("converger_redis_up", () => {
  it("is 1 while the bus and limiter connections are ready, 0 while Redis is away, and gone once closed", async () => {
    const bus: Bus = await createRedisBus(redis.url, log);
    const limits = createRedisLimiterStore(redis.url, log);
    try {
      await expect.poll(() => upOf("bus")).toBe(1);
      await expect.poll(() => upOf("limits")).toBe(1);
      await redis.stop();
      await expect.poll(() => upOf("bus"), { timeout: 10_000 }).toBe(0);
      await expect.poll(() => upOf("limits"), { timeout: 10_000 }).toBe(0);
      await redis.restart();
      await expect.poll(() => upOf("bus"), { timeout: 15_000 }).toBe(1);
      await expect.poll(() => upOf("limits"), { timeout: 15_000 }).toBe(1);
    } finally {
      await bus.close();
      await limits.close();
    }
    expect(await upOf("bus")).toBeUndefined();
    expect(await upOf("limits")).toBeUndefined();
  }, 60_000);
});
