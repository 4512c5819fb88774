import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { loadConfig } from "../services/common/config.js";
import { createLogger } from "../services/common/obs/logger.js";
import { type App, startApp } from "../services/host/app.js";
import { ADMIN_TOKEN, call, fixtures, startTestApp, type TestApp, UNLIMITED } from "./helpers/app.js";
import { freePort } from "./helpers/process.js";
import { type RedisServer, startRedis } from "./helpers/redis.js";

const LIMITS = { ...UNLIMITED, RATE_LIMIT_PER_MINUTE: "4" };

describe("rate limits shared through Redis", () => {
  let redis: RedisServer;
  let first: TestApp;
  let second: App;
  const logLines: string[] = [];

  beforeAll(async () => {
    redis = await startRedis(await freePort());
    first = await startTestApp({ ...LIMITS, REDIS_URL: redis.url });
    // A second gateway process of the same deployment: same database, same Redis.
    const sink = new Writable({
      write(chunk, _encoding, done) {
        logLines.push(...chunk.toString().split("\n").filter(Boolean));
        done();
      },
    });
    const config = loadConfig({
      HOST: "127.0.0.1",
      PORT: "0",
      GRPC_PORT: "0",
      WS_PORT: "0",
      DATABASE_URL: first.app.databaseUrl ?? "",
      DATA_DIR: mkdtempSync(join(tmpdir(), "converger-app-")),
      ADMIN_TOKEN,
      REDIS_URL: redis.url,
      ...LIMITS,
    });
    second = await startApp(config, createLogger("info", sink));
  });
  afterAll(async () => {
    await second?.stop();
    await first?.stop();
    await redis?.stop();
  });

  const secondUrl = () => `http://127.0.0.1:${second.ports.gateway}`;

  it("enforces one limit across two gateway processes", async () => {
    const tenant = await fixtures(first.baseUrl).tenant();
    const channel = await fixtures(first.baseUrl).channel(tenant.key);
    const conversation = await fixtures(secondUrl()).conversation(tenant.key, channel.id);
    const post = (baseUrl: string) => fixtures(baseUrl).message(tenant.key, conversation.id, "hi");
    expect((await post(first.baseUrl)).status).toBe(201);
    expect((await post(secondUrl())).status).toBe(201);
    expect((await post(first.baseUrl)).status).toBe(429);
    expect((await post(secondUrl())).status).toBe(429);
  });

  it("keeps accepting writes when Redis dies, counting in memory, with a log line and a metric", async () => {
    const tenant = await fixtures(secondUrl()).tenant();
    const channel = await fixtures(secondUrl()).channel(tenant.key);
    await redis.stop();
    onTestFinished(() => redis.restart());
    const conversation = await fixtures(secondUrl()).conversation(tenant.key, channel.id);
    expect(conversation.id).toBeTruthy();
    const statuses = [];
    for (let i = 0; i < 4; i++)
      statuses.push((await fixtures(secondUrl()).message(tenant.key, conversation.id, "x")).status);
    // The insurance limiter starts its own count: 1 conversation + 3 messages, then the limit.
    expect(statuses).toEqual([201, 201, 201, 429]);
    const metrics = await call(secondUrl(), "GET", "/metrics");
    const fallbacks = /converger_rate_limit_fallbacks_total\{limiter="credential"\} (\d+)/.exec(metrics.body as never);
    expect(Number(fallbacks?.[1])).toBeGreaterThanOrEqual(4);
    expect(logLines.some((line) => line.includes("rate limits: Redis unreachable"))).toBe(true);
  });
});
