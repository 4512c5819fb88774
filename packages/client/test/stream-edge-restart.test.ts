import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, fixtures, startTestApp, type TestApp } from "../../../test/helpers/app.js";
import { freePort, type ServiceProcess, spawnService } from "../../../test/helpers/process.js";
import { type RedisServer, startRedis } from "../../../test/helpers/redis.js";
import { createStream } from "../src/stream.js";
import { recordActivities, testContext, upTo } from "./helpers.js";

// The API and services run here; the stream goes through an edge-only process, fed by
// Redis, that is killed and started again on the same port while activities are posted.
let redis: RedisServer;
let t: TestApp;
let edge: ServiceProcess | undefined;
let edgeEnv: Record<string, string>;
let edgeUrl: string;
let f: ReturnType<typeof fixtures>;
let tenant: { id: string; key: string };
let channel: { id: string };

const startEdge = async () => {
  edge = await spawnService(edgeEnv, ["--services=realtime"], /^edge /m);
};

beforeAll(async () => {
  redis = await startRedis(await freePort());
  t = await startTestApp({ PORT: String(await freePort()), REDIS_URL: redis.url });
  const wsPort = await freePort();
  const upstream = `http://127.0.0.1:${t.app.ports.grpc}`;
  edgeEnv = {
    REDIS_URL: redis.url,
    WS_PORT: String(wsPort),
    GRPC_PORT: String(await freePort()),
    CONVERSATIONS_GRPC_URL: upstream,
    AUTH_GRPC_URL: upstream,
    // The token issuer: the edge must agree with the node that signs.
    PUBLIC_URL: t.app.config.publicUrl,
    ADMIN_TOKEN: t.app.config.adminToken,
  };
  edgeUrl = `ws://127.0.0.1:${wsPort}/ws`;
  await startEdge();
  f = fixtures(t.baseUrl);
  tenant = await f.tenant("Edge Restart Co");
  channel = await f.channel(tenant.key, "websocket");
}, 120_000);
afterAll(async () => {
  await edge?.stop();
  await t?.stop();
  await redis?.stop();
});

/** Posts through REST until stopped (the API stays up throughout). */
function startPoster(conversationId: string) {
  let running = true;
  let posted = 0;
  const done = (async () => {
    while (running) {
      const res = await f.message(tenant.key, conversationId, `post-${posted + 1}`);
      expect(res.status).toBe(201);
      posted++;
    }
  })();
  return {
    posted: () => posted,
    async stop() {
      running = false;
      await done;
    },
  };
}

describe("stream across edge restarts", () => {
  it("ends with every seq exactly once, in order, after the edge is killed and after it is stopped", async () => {
    const { id } = await f.conversation(tenant.key, channel.id);
    const token = await f.clientToken(tenant.key, id, "alice");
    const stream = createStream(testContext(t.baseUrl, { token }).context, { url: edgeUrl, maxBackoffMs: 500 });
    const seen = recordActivities(stream);
    const poster = startPoster(id);
    await seen.waitFor(10);
    for (const signal of ["SIGKILL", "SIGTERM"] as const) {
      await edge?.stop(signal);
      // Posts go on while no edge runs: the stream must get them from the log.
      const postedWhileDown = poster.posted() + 5;
      await expect.poll(() => poster.posted(), { timeout: 20_000 }).toBeGreaterThanOrEqual(postedWhileDown);
      await startEdge();
      await seen.waitFor(seen.activities.length + 10);
    }
    await poster.stop();
    const total = poster.posted();
    const sentinel = await stream.send({ text: "sentinel" });
    expect(sentinel.seq).toBe(BigInt(total + 1));
    await seen.waitFor(total + 1);
    expect(seen.seqs()).toEqual(upTo(total + 1));
    const stats = stream.stats();
    console.info(
      `edge restart test: ${total + 1} seqs delivered; ${stats.activityFrames} activity frames received, ` +
        `${stats.duplicates} duplicates dropped, ${stats.gaps} gaps, ${stats.connectionAttempts} connection attempts`,
    );
    expect(stats.gaps).toBe(0);
    const stored = await call(t.baseUrl, "GET", `/v1/conversations/${id}`, { key: tenant.key });
    expect(Number(stored.body.last_seq)).toBe(total + 1);
    stream.close();
  }, 120_000);
});
