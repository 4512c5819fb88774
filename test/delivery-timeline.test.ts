import { createHmac, randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, fixtures, startTestApp, type TestApp } from "./helpers/app.js";
import { startHttpSink } from "./helpers/http-sink.js";

// Two tries per delivery, 3^n × 20 ms apart, so deliveries fail within a test.
const env = {
  WEBHOOK_ALLOW_PRIVATE: "true",
  DELIVERY_BACKOFF_BASE_MS: "20",
  DELIVERY_MAX_ATTEMPTS: "2",
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

const deliveryOf = async (activityId: string) =>
  (await call(t.baseUrl, "GET", `/v1/activities/${activityId}/deliveries`, { key })).body.deliveries?.[0];
const timeline = async (deliveryId: string, apiKey = key) =>
  call(t.baseUrl, "GET", `/v1/deliveries/${deliveryId}/attempts`, { key: apiKey });
const bulkRetry = (body: Record<string, unknown>) => call(t.baseUrl, "POST", "/v1/deliveries/retry", { key, body });

describe("attempt timeline", () => {
  it("records each try with its outcome, error, HTTP status and timing, oldest first", async () => {
    const sink = await startHttpSink((_req, n) => ({ status: n === 1 ? 503 : 200 }));
    try {
      const channel = await f.channel(key, "webhook", { url: sink.url });
      const { id } = await f.conversation(key, channel.id);
      const posted = (await f.message(key, id, "second time lucky")).body;
      await expect.poll(async () => (await deliveryOf(posted.id))?.status, { timeout: 5000 }).toBe("delivered");
      const delivery = await deliveryOf(posted.id);
      const res = await timeline(delivery.id);
      expect(res.status).toBe(200);
      expect(res.body.attempts).toMatchObject([
        { kind: "try", attempt: 1, outcome: "retry", error: "HTTP 503", http_status: 503, delivery_id: delivery.id },
        { kind: "try", attempt: 2, outcome: "delivered", http_status: 200 },
      ]);
      expect(res.body.attempts[1].error).toBeUndefined();
      for (const a of res.body.attempts) {
        expect(Date.parse(a.finished_at)).toBeGreaterThanOrEqual(Date.parse(a.started_at));
        expect(a.duration_ms).toBe(Date.parse(a.finished_at) - Date.parse(a.started_at));
      }
      // The retry waited its back-off after the first try ended.
      expect(Date.parse(res.body.attempts[1].started_at)).toBeGreaterThan(Date.parse(res.body.attempts[0].finished_at));
    } finally {
      await sink.close();
    }
  });

  it("answers 404 for another tenant's delivery and an unknown one, 200 with nothing for an untried one", async () => {
    const other = await f.tenant("Other");
    const channel = await f.channel(key, "websocket");
    const { id } = await f.conversation(key, channel.id);
    const posted = (await f.message(key, id, "served by the stream")).body;
    await expect.poll(async () => (await deliveryOf(posted.id))?.status, { timeout: 5000 }).toBe("delivered");
    const delivery = await deliveryOf(posted.id);
    expect(await timeline(delivery.id)).toMatchObject({ status: 200, body: { attempts: [] } });
    expect(await timeline(delivery.id, other.key)).toMatchObject({ status: 404, body: { code: "not_found" } });
    expect(await timeline(randomUUID())).toMatchObject({ status: 404, body: { code: "not_found" } });
  });

  it("keeps a provider's status callbacks on the timeline", async () => {
    const graph = await startHttpSink(() => ({ status: 200, body: { messages: [{ id: "wamid.TL1" }] } }));
    const appSecret = "timeline-app-secret";
    try {
      const channel = await f.channel(key, "whatsapp_meta", {
        phone_number_id: "2001",
        access_token: "EAAG-tl",
        verify_token: "vt",
        app_secret: appSecret,
        base_url: `${graph.url}/v18.0`,
      });
      const metadata = { display_phone_number: "15550002", phone_number_id: "2001" };
      const inbound = async (value: Record<string, unknown>) => {
        const body = JSON.stringify({
          object: "whatsapp_business_account",
          entry: [
            {
              id: "waba",
              changes: [{ field: "messages", value: { messaging_product: "whatsapp", metadata, ...value } }],
            },
          ],
        });
        const signature = `sha256=${createHmac("sha256", appSecret).update(body).digest("hex")}`;
        const res = await call(t.baseUrl, "POST", `/v1/channels/${channel.id}/inbound`, {
          body,
          headers: { "content-type": "application/json", "x-hub-signature-256": signature },
        });
        expect(res.status).toBe(200);
      };
      await inbound({
        contacts: [{ profile: { name: "Ana" }, wa_id: "4916" }],
        messages: [{ from: "4916", id: "wamid.TLIN", timestamp: "1700000000", type: "text", text: { body: "Hi" } }],
      });
      const conv = await t.db.query("SELECT id FROM conversations WHERE channel_id = $1", [channel.id]);
      const reply = (await f.message(key, conv.rows[0].id, "Hello Ana")).body;
      await expect.poll(async () => (await deliveryOf(reply.id))?.status, { timeout: 5000 }).toBe("delivered");
      await inbound({ statuses: [{ id: "wamid.TL1", status: "read", timestamp: "1700000100", recipient_id: "4916" }] });
      const res = await timeline((await deliveryOf(reply.id)).id);
      expect(res.body.attempts).toMatchObject([
        { kind: "try", attempt: 1, outcome: "delivered", http_status: 200 },
        { kind: "status", attempt: 1, provider_status: "read" },
      ]);
    } finally {
      await graph.close();
    }
  });

  it("goes with its delivery when retention prunes it", async () => {
    const channel = await f.channel(key, "echo");
    const { id } = await f.conversation(key, channel.id);
    const posted = (await f.message(key, id, "echo me")).body;
    await expect.poll(async () => (await deliveryOf(posted.id))?.status, { timeout: 5000 }).toBe("delivered");
    const { id: deliveryId } = await deliveryOf(posted.id);
    expect((await timeline(deliveryId)).body.attempts).toHaveLength(1);
    await t.db.query("DELETE FROM deliveries WHERE id = $1", [deliveryId]);
    const left = await t.db.query("SELECT count(*)::int AS n FROM delivery_attempts WHERE delivery_id = $1", [
      deliveryId,
    ]);
    expect(left.rows[0].n).toBe(0);
  });
});

describe("bulk retry", () => {
  it("counts in a dry run exactly what the run retries, then the retried ones deliver", async () => {
    let healthy = false;
    const sink = await startHttpSink(() => ({ status: healthy ? 200 : 500 }));
    try {
      const target = await f.channel(key, "webhook", { url: `${sink.url}/target` });
      const bystander = await f.channel(key, "webhook", { url: `${sink.url}/bystander` });
      const posted: string[] = [];
      for (const channel of [target, target, target, bystander]) {
        const { id } = await f.conversation(key, channel.id);
        posted.push((await f.message(key, id, "fails twice")).body.id);
      }
      for (const activityId of posted) {
        await expect.poll(async () => (await deliveryOf(activityId))?.status, { timeout: 10_000 }).toBe("failed");
      }

      const dry = await bulkRetry({ channel_id: target.id, dry_run: true });
      expect(dry).toMatchObject({ status: 200, body: { count: 3 } });
      expect(dry.body.has_more ?? false).toBe(false);
      expect((await bulkRetry({ channel_id: target.id, dry_run: true, max: 2 })).body).toMatchObject({
        count: 2,
        has_more: true,
      });
      // The dry runs changed nothing.
      expect((await deliveryOf(posted[0] as string)).status).toBe("failed");

      healthy = true;
      const run = await bulkRetry({ channel_id: target.id, status: "failed" });
      expect(run.body.count).toBe(dry.body.count);
      for (const activityId of posted.slice(0, 3)) {
        await expect.poll(async () => (await deliveryOf(activityId))?.status, { timeout: 5000 }).toBe("delivered");
      }
      expect((await deliveryOf(posted[3] as string)).status).toBe("failed");
      expect(sink.requests.filter((r) => r.path === "/bystander")).toHaveLength(2);

      const retried = await timeline((await deliveryOf(posted[0] as string)).id);
      expect(retried.body.attempts.map((a: { kind: string; attempt: number; outcome?: string }) => a)).toMatchObject([
        { kind: "try", attempt: 1, outcome: "retry" },
        { kind: "try", attempt: 2, outcome: "failed" },
        { kind: "retry_requested", attempt: 2 },
        { kind: "try", attempt: 1, outcome: "delivered" },
      ]);
      expect((await bulkRetry({ channel_id: target.id, dry_run: true })).body.count ?? 0).toBe(0);
    } finally {
      await sink.close();
    }
  });

  it("refuses to retry delivered deliveries", async () => {
    const res = await bulkRetry({ status: "delivered", dry_run: true });
    expect(res).toMatchObject({ status: 400, body: { code: "invalid_argument" } });
  });
});
