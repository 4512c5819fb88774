import { createHmac, randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, fixtures, startTestApp, type TestApp } from "./helpers/app.js";
import { startHttpSink } from "./helpers/http-sink.js";
import { openSocket } from "./helpers/ws.js";

// Small base so retries happen within a test: waits of 3^n × 20 ms. A channel whose circuit opened
// (5 failed tries in a row) lets its probe through 50 ms on.
const env = {
  WEBHOOK_ALLOW_PRIVATE: "true",
  DELIVERY_BACKOFF_BASE_MS: "20",
  PROCESSING_RETRY_BASE_MS: "20",
  DELIVERY_CIRCUIT_COOLDOWN_MS: "50",
};

let t: TestApp;
let key: string;
let f: ReturnType<typeof fixtures>;
beforeAll(async () => {
  t = await startTestApp(env);
  f = fixtures(t.baseUrl);
  key = (await f.tenant()).key;
});
afterAll(() => t?.stop());

async function webhookConversation(url: string) {
  const channel = await f.channel(key, "webhook", { url, headers: { "X-Token": "abc" } });
  const { id } = await f.conversation(key, channel.id);
  return { channel, conversationId: id };
}

const deliveriesOf = async (activityId: string) =>
  (await call(t.baseUrl, "GET", `/v1/activities/${activityId}/deliveries`, { key })).body.deliveries;

describe("webhook delivery", () => {
  it("POSTs the signed activity to the channel's URL and records it delivered", async () => {
    const sink = await startHttpSink();
    try {
      const { channel, conversationId } = await webhookConversation(`${sink.url}/hook`);
      const posted = (await f.message(key, conversationId, "hello")).body;
      await expect.poll(() => sink.requests.length, { timeout: 5000 }).toBe(1);
      const [req] = sink.requests;
      expect(req?.method).toBe("POST");
      expect(req?.path).toBe("/hook");
      expect(req?.headers["x-token"]).toBe("abc");
      const body = JSON.parse(req?.body ?? "{}");
      expect(body).toMatchObject({ event: "activity", activity: { id: posted.id, text: "hello", seq: "1" } });
      const signature = String(req?.headers["x-converger-signature"]);
      const [, ts, mac] = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(signature) ?? [];
      expect(mac).toBe(createHmac("sha256", channel.secret).update(`${ts}.${req?.body}`).digest("hex"));
      await expect.poll(async () => (await deliveriesOf(posted.id))[0]?.status, { timeout: 5000 }).toBe("delivered");
      const [delivery] = await deliveriesOf(posted.id);
      expect(delivery).toMatchObject({ id: body.delivery_id, channel_id: channel.id, attempts: 1 });
    } finally {
      await sink.close();
    }
  });

  it("retries a failing sink with growing gaps and delivers on the 4th try", async () => {
    const sink = await startHttpSink((_req, n) => ({ status: n <= 3 ? 503 : 200 }));
    try {
      const { conversationId } = await webhookConversation(sink.url);
      const posted = (await f.message(key, conversationId, "retry me")).body;
      await expect.poll(async () => (await deliveriesOf(posted.id))[0]?.status, { timeout: 10_000 }).toBe("delivered");
      expect(sink.requests).toHaveLength(4);
      const gaps = sink.requests.slice(1).map((r, i) => r.at - (sink.requests[i]?.at ?? 0));
      // 3^1, 3^2, 3^3 × 20 ms, each ±10 %.
      expect(gaps[0]).toBeGreaterThanOrEqual(54 - 5);
      expect(gaps[1]).toBeGreaterThan(gaps[0] as number);
      expect(gaps[2]).toBeGreaterThan(gaps[1] as number);
      expect((await deliveriesOf(posted.id))[0]).toMatchObject({ attempts: 4 });
    } finally {
      await sink.close();
    }
  });
});

describe("retries, dead letters and order", () => {
  it("marks a delivery failed after DELIVERY_MAX_ATTEMPTS tries, lists it, and delivers it on retry", async () => {
    let healthy = false;
    const sink = await startHttpSink(() => ({ status: healthy ? 204 : 500 }));
    try {
      const { channel, conversationId } = await webhookConversation(sink.url);
      const posted = (await f.message(key, conversationId, "doomed")).body;
      await expect.poll(async () => (await deliveriesOf(posted.id))[0]?.status, { timeout: 15_000 }).toBe("failed");
      expect(sink.requests).toHaveLength(5);
      const [failed] = await deliveriesOf(posted.id);
      expect(failed).toMatchObject({ attempts: 5, last_error: "HTTP 500" });
      const listed = await call(t.baseUrl, "GET", `/v1/deliveries?status=failed&channel_id=${channel.id}`, { key });
      expect(listed.body.deliveries.map((d: { id: string }) => d.id)).toEqual([failed.id]);
      const feed = await call(t.baseUrl, "GET", "/v1/events", { key });
      expect(feed.body.events.map((e: { message: string }) => e.message).join("\n")).toContain(`delivery ${failed.id}`);

      healthy = true;
      const retried = await call(t.baseUrl, "POST", `/v1/deliveries/${failed.id}/retry`, { key, body: {} });
      expect(retried.status).toBe(202);
      expect(retried.body).toMatchObject({ status: "pending", attempts: 0 });
      await expect.poll(async () => (await deliveriesOf(posted.id))[0]?.status, { timeout: 5000 }).toBe("delivered");
      expect(sink.requests).toHaveLength(6);
      const again = await call(t.baseUrl, "POST", `/v1/deliveries/${failed.id}/retry`, { key, body: {} });
      expect(again.status).toBe(409);
    } finally {
      await sink.close();
    }
  });

  it("keeps seq order per conversation while another conversation's retries do not hold it back", async () => {
    // slow-1 fails until fast-5 has arrived: had its retries held the other conversation back,
    // fast-5 would never come and slow-1 would run out of tries.
    let fastDone = false;
    const sink = await startHttpSink((req) => {
      const { activity } = JSON.parse(req.body) as { activity: { text: string } };
      if (activity.text === "fast-5") fastDone = true;
      return { status: activity.text === "slow-1" && !fastDone ? 503 : 200 };
    });
    try {
      const slow = await webhookConversation(sink.url);
      const fast = await webhookConversation(sink.url);
      const texts = () => sink.json<{ activity: { text: string } }>().map((b) => b.activity.text);
      for (let i = 1; i <= 3; i++) await f.message(key, slow.conversationId, `slow-${i}`);
      await expect.poll(() => texts().includes("slow-1")).toBe(true);
      for (let i = 1; i <= 5; i++) await f.message(key, fast.conversationId, `fast-${i}`);
      await expect.poll(() => texts().includes("slow-3"), { timeout: 10_000 }).toBe(true);
      expect(texts().filter((x) => x.startsWith("fast"))).toEqual(["fast-1", "fast-2", "fast-3", "fast-4", "fast-5"]);
      const slowTries = texts().filter((x) => x.startsWith("slow"));
      // Every try of slow-1 (one refused at least) before slow-2 and slow-3, each sent once.
      expect(slowTries.slice(-2)).toEqual(["slow-2", "slow-3"]);
      expect(slowTries.length).toBeGreaterThanOrEqual(4);
      expect(new Set(slowTries.slice(0, -2))).toEqual(new Set(["slow-1"]));
      expect(texts().indexOf("fast-5")).toBeLessThan(texts().lastIndexOf("slow-1"));
    } finally {
      await sink.close();
    }
  });

  it("delivers once when the relay publishes an event again (acked, then not marked)", async () => {
    const sink = await startHttpSink();
    try {
      const { conversationId } = await webhookConversation(sink.url);
      await f.message(key, conversationId, "once");
      await expect.poll(() => sink.requests.length, { timeout: 5000 }).toBe(1);
      // What a relay killed between the log's ack and its UPDATE leaves behind.
      const reset = await t.db.query("UPDATE outbox SET published_at = NULL WHERE key = $1", [conversationId]);
      expect(reset.rowCount).toBe(1);
      await expect
        .poll(
          async () =>
            (
              await t.db.query("SELECT count(*)::int AS n FROM outbox WHERE key = $1 AND published_at IS NULL", [
                conversationId,
              ])
            ).rows[0].n,
          { timeout: 5000 },
        )
        .toBe(0);
      // The sentinel comes after the republished event in the conversation's order: once it is
      // delivered, a duplicate of the first would have been too.
      await f.message(key, conversationId, "sentinel");
      await expect.poll(() => sink.requests.length, { timeout: 5000 }).toBeGreaterThanOrEqual(2);
      expect(sink.json<{ activity: { text: string } }>().map((b) => b.activity.text)).toEqual(["once", "sentinel"]);
    } finally {
      await sink.close();
    }
  });
});

describe("echo and websocket channels", () => {
  it("echo answers as the bot in the same conversation and never delivers its own reply", async () => {
    const channel = await f.channel(key, "echo");
    const { id } = await f.conversation(key, channel.id);
    const posted = (await f.message(key, id, "ping?")).body;
    const list = () => call(t.baseUrl, "GET", `/v1/conversations/${id}/activities`, { key });
    await expect.poll(async () => (await list()).body.activities.length, { timeout: 5000 }).toBe(2);
    const [, reply] = (await list()).body.activities;
    expect(reply).toMatchObject({ seq: "2", text: "ping?", from: { id: "bot" }, origin_channel_id: channel.id });
    await expect.poll(async () => (await deliveriesOf(posted.id))[0]?.status, { timeout: 5000 }).toBe("delivered");
    expect(await deliveriesOf(reply.id)).toEqual([]);
  });

  it("marks websocket deliveries delivered without sending anything", async () => {
    const channel = await f.channel(key, "websocket");
    const { id } = await f.conversation(key, channel.id);
    const posted = (await f.message(key, id, "on the stream")).body;
    await expect.poll(async () => (await deliveriesOf(posted.id))[0]?.status, { timeout: 5000 }).toBe("delivered");
  });

  it("answers 404 for the deliveries of an unknown activity", async () => {
    const res = await call(t.baseUrl, "GET", `/v1/activities/${randomUUID()}/deliveries`, { key });
    expect(res).toMatchObject({ status: 404, body: { code: "not_found" } });
  });

  it("lists no deliveries, with 200, for an own activity nothing is sent for", async () => {
    const channel = await f.channel(key, "websocket");
    const { id } = await f.conversation(key, channel.id);
    const typing = await call(t.baseUrl, "POST", `/v1/conversations/${id}/activities`, {
      key,
      body: { type: "event", text: "x", from: { id: "agent-1" } },
    });
    expect(typing.status).toBe(201);
    // The row is made by the log consumer, after the post answered: delete it once it exists.
    await expect.poll(async () => (await deliveriesOf(typing.body.id)).length, { timeout: 5000 }).toBe(1);
    await t.db.query("DELETE FROM deliveries WHERE activity_id = $1", [typing.body.id]);
    const res = await call(t.baseUrl, "GET", `/v1/activities/${typing.body.id}/deliveries`, { key });
    expect(res).toMatchObject({ status: 200, body: { deliveries: [] } });
  });

  it("hides deliveries from other tenants", async () => {
    const other = await f.tenant("Other");
    const channel = await f.channel(key, "websocket");
    const { id } = await f.conversation(key, channel.id);
    const posted = (await f.message(key, id, "mine")).body;
    await expect.poll(async () => (await deliveriesOf(posted.id)).length, { timeout: 5000 }).toBe(1);
    const [delivery] = await deliveriesOf(posted.id);
    const theirs = await call(t.baseUrl, "GET", `/v1/activities/${posted.id}/deliveries`, { key: other.key });
    expect(theirs).toMatchObject({ status: 404, body: { code: "not_found" } });
    const listed = await call(t.baseUrl, "GET", "/v1/deliveries", { key: other.key });
    expect(listed.body.deliveries).toEqual([]);
    const retry = await call(t.baseUrl, "POST", `/v1/deliveries/${delivery.id}/retry`, { key: other.key, body: {} });
    expect(retry.status).toBe(404);
  });
});

describe("processing dead letters", () => {
  it("dead-letters an event its consumer keeps failing on, counts it, and replays it on request", async () => {
    const sink = await startHttpSink();
    const admin = { token: "test-admin-token" };
    try {
      const { conversationId } = await webhookConversation(sink.url);
      // The consumer's table is gone for a while: every try to record the delivery fails.
      await t.db.query("ALTER TABLE deliveries RENAME TO deliveries_away");
      let restored = false;
      try {
        await f.message(key, conversationId, "poison for a while");
        const letters = () => call(t.baseUrl, "GET", "/admin/v1/processing-dead-letters", admin);
        await expect.poll(async () => (await letters()).body.dead_letters?.length ?? 0, { timeout: 10_000 }).toBe(1);
        await t.db.query("ALTER TABLE deliveries_away RENAME TO deliveries");
        restored = true;
        const [letter] = (await letters()).body.dead_letters;
        expect(letter).toMatchObject({ consumer: "delivery", topic: "converger.activities", attempts: 4 });
        expect(letter.error).toMatch(/deliveries/);
        const metrics = await (await fetch(`${t.baseUrl}/metrics`)).text();
        expect(metrics).toMatch(
          /converger_processing_dead_letters_total\{consumer="delivery",topic="converger.activities"\} [1-9]/,
        );
        expect(sink.requests).toHaveLength(0);

        const replayed = await call(t.baseUrl, "POST", `/admin/v1/processing-dead-letters/${letter.id}/replay`, {
          ...admin,
          body: {},
        });
        expect(replayed.status).toBe(200);
        expect(replayed.body.replayed_at).toBeTruthy();
        await expect.poll(() => sink.requests.length, { timeout: 5000 }).toBe(1);
        expect((await letters()).body.dead_letters).toEqual([]);
        const forbidden = await call(t.baseUrl, "GET", "/admin/v1/processing-dead-letters", { key });
        expect(forbidden.status).toBe(401);
      } finally {
        if (!restored) await t.db.query("ALTER TABLE deliveries_away RENAME TO deliveries");
      }
    } finally {
      await sink.close();
    }
  });
});

describe("delivery frames", () => {
  it("streams each status change of a delivery to the conversation's subscribers", async () => {
    const sink = await startHttpSink((_req, n) => ({ status: n === 1 ? 500 : 200 }));
    try {
      const { channel, conversationId } = await webhookConversation(sink.url);
      const minted = await call(t.baseUrl, "POST", "/v1/tokens", {
        token: channel.secret,
        body: { user: { id: "watcher" }, conversation_id: conversationId },
      });
      const socket = await openSocket(`ws://127.0.0.1:${t.app.ports.edge}/ws?token=${minted.body.token}`);
      await socket.next((fr) => fr.type === "connection_established");
      const posted = (await f.message(key, conversationId, "watch my delivery")).body;
      const frames = await socket.collect((fr) => fr.type === "delivery", 2);
      expect(frames.map((fr) => [fr.delivery.activity_id, fr.delivery.status, fr.delivery.attempts])).toEqual([
        [posted.id, "pending", 1],
        [posted.id, "delivered", 2],
      ]);
      expect(frames[0]?.delivery.last_error).toBe("HTTP 500");
      socket.ws.close();
    } finally {
      await sink.close();
    }
  });
});
