import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_TOKEN, call, fixtures } from "../../../test/helpers/app.js";
import { createTestDatabase } from "../../../test/helpers/database.js";
import { freePort, type ServiceProcess, spawnService } from "../../../test/helpers/process.js";
import { createStream } from "../src/stream.js";
import { reach, recordActivities, storedActivities, testContext, upTo } from "./helpers.js";

// One server process, restarted on the same ports, database and DATA_DIR (its keyring: tokens stay valid).
let env: Record<string, string>;
let server: ServiceProcess | undefined;
let up: Promise<void>;
let baseUrl: string;
let edgeUrl: string;
let f: ReturnType<typeof fixtures>;
let tenant: { id: string; key: string };
let channel: { id: string };

async function start() {
  up = spawnService(env).then((p) => {
    server = p;
  });
  await up;
}

async function stop(signal: NodeJS.Signals) {
  const current = server;
  server = undefined;
  let restarted = () => {};
  // Callers waiting for the server (the poster) wait for the next start.
  up = new Promise<void>((resolve) => (restarted = resolve));
  await current?.stop(signal);
  return restarted;
}

beforeAll(async () => {
  const [port, wsPort, grpcPort] = [await freePort(), await freePort(), await freePort()];
  env = {
    HOST: "127.0.0.1",
    PORT: String(port),
    WS_PORT: String(wsPort),
    GRPC_PORT: String(grpcPort),
    DATABASE_URL: await createTestDatabase(),
    DATA_DIR: mkdtempSync(join(tmpdir(), "converger-stream-")),
    ADMIN_TOKEN,
  };
  baseUrl = `http://127.0.0.1:${port}`;
  edgeUrl = `ws://127.0.0.1:${wsPort}/ws`;
  await start();
  f = fixtures(baseUrl);
  tenant = await f.tenant("Restart Co");
  channel = await f.channel(tenant.key, "websocket");
});
afterAll(() => server?.stop());

async function restart(signal: NodeJS.Signals) {
  const restarted = await stop(signal);
  await start();
  restarted();
}

/** Posts through REST until stopped; a post the server did not answer is retried with its key once it is back. */
function startPoster(conversationId: string) {
  let running = true;
  let posted = 0;
  const done = (async () => {
    while (running) {
      const key = `post-${posted + 1}`;
      for (;;) {
        const res = await f.message(tenant.key, conversationId, key, { "idempotency-key": key }).catch(() => undefined);
        if (res && res.status < 300) break;
        await up;
      }
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

async function lastSeq(conversationId: string): Promise<number> {
  const res = await call(baseUrl, "GET", `/v1/conversations/${conversationId}`, { key: tenant.key });
  return Number(res.body.last_seq);
}

describe("stream across server restarts", () => {
  it("ends with every seq exactly once, in order, after a graceful and an abrupt restart under load", async () => {
    const { id } = await f.conversation(tenant.key, channel.id);
    const token = await f.clientToken(tenant.key, id, "alice");
    const stream = createStream(testContext(baseUrl, { token }).context, { url: edgeUrl, maxBackoffMs: 500 });
    const seen = recordActivities(stream);
    const states: string[] = [];
    stream.on("state", (s) => states.push(s));
    const poster = startPoster(id);
    await seen.waitFor(10);
    await restart("SIGTERM");
    await seen.waitFor(seen.activities.length + 10);
    await restart("SIGKILL");
    await seen.waitFor(seen.activities.length + 10);
    await poster.stop();
    const total = await lastSeq(id);
    expect(total).toBe(poster.posted());
    await seen.waitFor(total);
    // A sentinel sent after everything else: nothing more may come before it.
    const sentinel = await stream.send({ text: "sentinel" });
    await seen.waitFor(total + 1);
    expect(sentinel.seq).toBe(BigInt(total + 1));
    expect(seen.seqs()).toEqual(upTo(total + 1));
    const stats = stream.stats();
    console.info(
      `restart test: ${total + 1} seqs delivered; ${stats.activityFrames} activity frames received, ` +
        `${stats.duplicates} duplicates dropped, ${stats.gaps} gaps, ${stats.connectionAttempts} connection attempts`,
    );
    expect(stats.gaps).toBe(0);
    expect(stats.activityFrames).toBe(total + 1 + stats.duplicates);
    expect(states.filter((s) => s === "reconnecting").length).toBeGreaterThanOrEqual(2);
    stream.close();
  }, 120_000);

  it("queues a send made while the server is down and stores it once after the reconnect", async () => {
    const { id } = await f.conversation(tenant.key, channel.id);
    const token = await f.clientToken(tenant.key, id, "bob");
    const stream = createStream(testContext(baseUrl, { token }).context, { url: edgeUrl, maxBackoffMs: 500 });
    await reach(stream, "open");
    const restarted = await stop("SIGTERM");
    expect(stream.state).toBe("reconnecting");
    const sent = stream.send({ text: "sent while down" });
    await start();
    restarted();
    const activity = await sent;
    expect(activity).toMatchObject({ seq: 1n, text: "sent while down", from: { id: "bob" } });
    const stored = await storedActivities(baseUrl, tenant.key, id);
    expect(stored.map((a) => [a.seq, a.text])).toEqual([["1", "sent while down"]]);
    stream.close();
  }, 120_000);
});
