import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_TOKEN, call, fixtures, startTestApp, type TestApp } from "./helpers/app.js";
import { startHttpSink } from "./helpers/http-sink.js";

// A failed try waits 30 min and an open circuit 10 min: what the stats see holds still while they are read.
const env = {
  WEBHOOK_ALLOW_PRIVATE: "true",
  DELIVERY_BACKOFF_BASE_MS: "600000",
  DELIVERY_CIRCUIT_COOLDOWN_MS: "600000",
};

let t: TestApp;
let f: ReturnType<typeof fixtures>;
let sink: Awaited<ReturnType<typeof startHttpSink>>;
beforeAll(async () => {
  t = await startTestApp(env);
  f = fixtures(t.baseUrl);
  sink = await startHttpSink(() => ({ status: 500 }));
});
afterAll(async () => {
  await sink?.close();
  await t?.stop();
});

const stats = (query = "") => call(t.baseUrl, "GET", `/admin/v1/delivery-stats${query}`, { token: ADMIN_TOKEN });
const counts = (pending: number, delivered: number, failed: number) => ({
  pending: String(pending),
  delivered: String(delivered),
  failed: String(failed),
});

describe("delivery stats", () => {
  it("counts per tenant and channel, and lists failed, overdue, blocked lines, open circuits and dead letters", async () => {
    const a = await f.tenant("A");
    const b = await f.tenant("B");
    // A: two delivered on the stream; three queued on one line behind a head whose try failed.
    const stream = await f.channel(a.key, "websocket");
    const streamed = await f.conversation(a.key, stream.id);
    for (const text of ["s1", "s2"]) await f.message(a.key, streamed.id, text);
    const hook = await f.channel(a.key, "webhook", { url: `${sink.url}/a` });
    const line = await f.conversation(a.key, hook.id);
    const head = (await f.message(a.key, line.id, "head")).body;
    for (const text of ["behind-1", "behind-2"]) await f.message(a.key, line.id, text);
    // B: one failed for good (no WhatsApp recipient), five lines failing once each: the circuit opens.
    const whatsapp = await f.channel(b.key, "whatsapp_meta", {
      phone_number_id: "3001",
      access_token: "EAAG-stats",
      verify_token: "vt",
      app_secret: "as",
      base_url: `${sink.url}/graph`,
    });
    await f.message(b.key, (await f.conversation(b.key, whatsapp.id)).id, "nobody to send to");
    const flaky = await f.channel(b.key, "webhook", { url: `${sink.url}/b` });
    for (let i = 0; i < 5; i++) await f.message(b.key, (await f.conversation(b.key, flaky.id)).id, `b${i}`);
    // Two dead letters, one replayed already.
    const letter =
      "INSERT INTO processing_dead_letters (id, consumer, topic, event_id, key, tenant_id, payload, error, attempts, created_at, replayed_at) VALUES ($1, 'delivery', 'converger.activities', $2, 'k', $3, '{}', 'boom', 4, $4, $5)";
    const oldest = new Date(Date.now() - 3_600_000);
    await t.db.query(letter, [randomUUID(), randomUUID(), a.id, oldest, null]);
    await t.db.query(letter, [randomUUID(), randomUUID(), a.id, new Date(Date.now() - 7_200_000), new Date()]);

    await expect.poll(() => sink.requests.length, { timeout: 10_000 }).toBe(6);
    // Settled: the queued two overdue (past 1 s), the circuit open, the WhatsApp delivery failed.
    const settled = async () => {
      const { attention } = (await stats("?overdue_after_seconds=1")).body;
      return [attention?.overdue, attention?.open_circuits?.length, attention?.failed];
    };
    await expect.poll(settled, { timeout: 10_000 }).toEqual(["2", 1, "1"]);
    const res = await stats("?overdue_after_seconds=1");
    expect(res.status).toBe(200);
    expect(res.body.total).toEqual(counts(8, 2, 1));
    // Most failed first, then most pending.
    expect(res.body.tenants).toEqual([
      { tenant_id: b.id, counts: counts(5, 0, 1) },
      { tenant_id: a.id, counts: counts(3, 2, 0) },
    ]);
    expect(res.body.channels).toEqual([
      { tenant_id: b.id, channel_id: whatsapp.id, counts: counts(0, 0, 1) },
      { tenant_id: b.id, channel_id: flaky.id, counts: counts(5, 0, 0) },
      { tenant_id: a.id, channel_id: hook.id, counts: counts(3, 0, 0) },
      { tenant_id: a.id, channel_id: stream.id, counts: counts(0, 2, 0) },
    ]);
    const { attention } = res.body;
    expect(attention).toMatchObject({ failed: "1", overdue: "2", blocked_line_count: "1", dead_letters: "1" });
    expect(Date.parse(attention.oldest_dead_letter_at)).toBe(oldest.getTime());
    const headDelivery = (await call(t.baseUrl, "GET", `/v1/activities/${head.id}/deliveries`, { key: a.key })).body
      .deliveries[0];
    expect(attention.blocked_lines).toEqual([
      {
        tenant_id: a.id,
        conversation_id: line.id,
        channel_id: hook.id,
        delivery_id: headDelivery.id,
        attempts: 1,
        last_error: "HTTP 500",
        next_attempt_at: headDelivery.next_attempt_at,
        waiting: "2",
      },
    ]);
    expect(attention.open_circuits).toMatchObject([
      { tenant_id: b.id, channel_id: flaky.id, consecutive_failures: 5, half_open: false },
    ]);
    expect(Date.parse(attention.open_circuits[0].opened_until)).toBeGreaterThan(Date.now());

    // The default threshold (60 s) finds nothing overdue yet; limit cuts every list.
    const cut = await stats("?limit=1");
    expect(cut.body.attention.overdue).toBe("0");
    expect(cut.body.tenants).toHaveLength(1);
    expect(cut.body.channels).toHaveLength(1);
    expect(cut.body.total).toEqual(counts(8, 2, 1));
  });

  it("is for the operator only: a tenant's API key is refused, over REST and Connect", async () => {
    const { key } = await f.tenant("Nosy");
    for (const path of ["/admin/v1/delivery-stats", "/admin/v1/outbox-stats"]) {
      expect(await call(t.baseUrl, "GET", path, { key })).toMatchObject({
        status: 401,
        body: { code: "unauthenticated" },
      });
    }
    const connect = await call(t.baseUrl, "POST", "/converger.v1.DeliveryService/GetDeliveryStats", { key, body: {} });
    expect(connect).toMatchObject({ status: 401, body: { code: "unauthenticated" } });
  });
});

describe("outbox stats", () => {
  it("answers the backlog, empty once the relay has caught up", async () => {
    const get = () => call(t.baseUrl, "GET", "/admin/v1/outbox-stats", { token: ADMIN_TOKEN });
    await expect.poll(async () => (await get()).body.backlog, { timeout: 5000 }).toBe("0");
    const res = await get();
    expect(res).toMatchObject({ status: 200, body: { backlog: "0", oldest_age_seconds: 0 } });
    expect(res.body.oldest_created_at).toBeUndefined();
  });
});
