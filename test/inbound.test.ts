import { createHmac } from "node:crypto";
import { hostname } from "node:os";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyHubSignature } from "../services/channel-adapters/index.js";
import { call, fixtures, startTestApp, type TestApp } from "./helpers/app.js";
import { startHttpSink } from "./helpers/http-sink.js";

let t: TestApp;
let key: string;
let f: ReturnType<typeof fixtures>;
beforeAll(async () => {
  t = await startTestApp({ WEBHOOK_ALLOW_PRIVATE: "true", DELIVERY_BACKOFF_BASE_MS: "20" });
  f = fixtures(t.baseUrl);
  key = (await f.tenant()).key;
});
afterAll(() => t?.stop());

const sign = (body: string, secret: string) => `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;

function inbound(channelId: string, body: string, signature?: string, prefix = "/v1") {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (signature !== undefined) headers["x-hub-signature-256"] = signature;
  return call(t.baseUrl, "POST", `${prefix}/channels/${channelId}/inbound`, { body, headers });
}

const activitiesCount = async () => (await t.db.query("SELECT count(*)::int AS n FROM activities")).rows[0].n;

describe("signatures", () => {
  it("passes GitHub's published HMAC test vector", () => {
    const body = Buffer.from("Hello, World!");
    const header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    expect(verifyHubSignature(body, "It's a Secret to Everybody", header)).toBe(true);
    expect(verifyHubSignature(body, "It's a Secret to Everybody", header.replace(/7$/, "8"))).toBe(false);
  });

  it("refuses missing, malformed and wrong signatures with 401 and stores nothing", async () => {
    const channel = await f.channel(key, "webhook", { url: "https://hooks.example.com/x" });
    const body = JSON.stringify({ external_id: "t1", message_id: "m1", from: { id: "u1" }, text: "hi" });
    const good = sign(body, channel.secret);
    const before = await activitiesCount();
    const cases = [
      undefined,
      "",
      `sha1=${createHmac("sha1", channel.secret).update(body).digest("hex")}`,
      good.slice(0, -1),
      `${good}0`,
      good.toUpperCase(),
      sign(body, "wrong secret"),
      sign(`${body} `, channel.secret),
    ];
    for (const signature of cases) {
      const res = await inbound(channel.id, body, signature);
      expect(res.status, String(signature)).toBe(401);
    }
    expect(await activitiesCount()).toBe(before);
  });
});

describe("webhook channel inbound", () => {
  it("stores a message in the conversation of its external id, once per message id", async () => {
    const channel = await f.channel(key, "webhook", { url: "https://hooks.example.com/x" });
    const send = (messageId: string, text: string, prefix?: string) => {
      const body = JSON.stringify({
        external_id: "thread-9",
        message_id: messageId,
        from: { id: "u9", name: "Nine" },
        text,
      });
      return inbound(channel.id, body, sign(body, channel.secret), prefix);
    };
    const first = await send("m-1", "first");
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ received: 1, duplicates: 0 });
    const replay = await send("m-1", "first", "/api/v1");
    expect(replay.status).toBe(200);
    expect(replay.body).toMatchObject({ received: 1, duplicates: 1, activity_ids: first.body.activity_ids });
    await send("m-2", "second");
    const conv = await t.db.query("SELECT id, external_id, members FROM conversations WHERE channel_id = $1", [
      channel.id,
    ]);
    expect(conv.rows).toEqual([{ id: expect.any(String), external_id: "thread-9", members: ["u9"] }]);
    const listed = await call(t.baseUrl, "GET", `/v1/conversations/${conv.rows[0].id}/activities`, { key });
    expect(listed.body.activities.map((a: { text: string }) => a.text)).toEqual(["first", "second"]);
    expect(listed.body.activities[0]).toMatchObject({
      from: { id: "u9", name: "Nine" },
      origin_channel_id: channel.id,
    });
    // Inbound activities are never delivered back to the channel they came from.
    const deliveries = await call(t.baseUrl, "GET", `/v1/activities/${listed.body.activities[0].id}/deliveries`, {
      key,
    });
    expect(deliveries.body.deliveries).toEqual([]);
  });

  it("answers 404 for an unknown channel, 409 for an inactive one and 400 for an unreadable payload", async () => {
    const channel = await f.channel(key, "webhook", { url: "https://hooks.example.com/x" });
    const unknown = await inbound("00000000-0000-4000-8000-000000000000", "{}", sign("{}", channel.secret));
    expect(unknown.status).toBe(404);
    for (const body of ["not json", "[]", JSON.stringify({ external_id: "x", from: { id: "u" } })]) {
      const res = await inbound(channel.id, body, sign(body, channel.secret));
      expect(res.status, body).toBe(400);
    }
    await call(t.baseUrl, "PATCH", `/v1/channels/${channel.id}`, { key, body: { status: "inactive" } });
    const body = JSON.stringify({ external_id: "t", message_id: "m", from: { id: "u" }, text: "x" });
    expect((await inbound(channel.id, body, sign(body, channel.secret))).status).toBe(409);
  });
});

describe("WhatsApp (Meta) channel", () => {
  const appSecret = "meta-app-secret";

  it("answers the hub.challenge with the verify token and refuses a wrong one", async () => {
    const channel = await f.channel(key, "whatsapp_meta", {
      phone_number_id: "1001",
      access_token: "EAAG",
      verify_token: "vt-123",
      app_secret: appSecret,
    });
    const path = `/v1/channels/${channel.id}/inbound?hub.mode=subscribe&hub.verify_token=vt-123&hub.challenge=8675309`;
    const res = await fetch(t.baseUrl + path);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(await res.text()).toBe("8675309");
    const wrong = await fetch(t.baseUrl + path.replace("vt-123", "guess"));
    expect(wrong.status).toBe(403);
  });

  it("turns an inbound message into a conversation, sends the agent's reply and applies status callbacks", async () => {
    const graph = await startHttpSink((req) =>
      req.path.endsWith("/messages")
        ? {
            status: 200,
            body: {
              messaging_product: "whatsapp",
              contacts: [{ input: "4915", wa_id: "4915" }],
              messages: [{ id: "wamid.OUT1" }],
            },
          }
        : { status: 404 },
    );
    try {
      const channel = await f.channel(key, "whatsapp_meta", {
        phone_number_id: "1002",
        access_token: "EAAG-token",
        verify_token: "vt",
        app_secret: appSecret,
        base_url: `${graph.url}/v18.0`,
      });
      const change = (value: Record<string, unknown>) =>
        JSON.stringify({
          object: "whatsapp_business_account",
          entry: [
            {
              id: "waba",
              changes: [
                {
                  field: "messages",
                  value: {
                    messaging_product: "whatsapp",
                    metadata: { display_phone_number: "15550001", phone_number_id: "1002" },
                    ...value,
                  },
                },
              ],
            },
          ],
        });
      const message = change({
        contacts: [{ profile: { name: "Ana" }, wa_id: "4915" }],
        messages: [{ from: "4915", id: "wamid.IN1", timestamp: "1700000000", type: "text", text: { body: "Hola" } }],
      });
      // Meta signs with the app secret, not the channel secret.
      expect((await inbound(channel.id, message, sign(message, channel.secret))).status).toBe(401);
      const received = await inbound(channel.id, message, sign(message, appSecret));
      expect(received.status).toBe(200);
      const conv = await t.db.query("SELECT id FROM conversations WHERE channel_id = $1 AND external_id = '4915'", [
        channel.id,
      ]);
      const conversationId = conv.rows[0].id as string;
      const listed = await call(t.baseUrl, "GET", `/v1/conversations/${conversationId}/activities`, { key });
      expect(listed.body.activities).toMatchObject([{ text: "Hola", from: { id: "4915", name: "Ana" } }]);

      const reply = (await f.message(key, conversationId, "¿En qué te ayudo?")).body;
      await expect.poll(() => graph.requests.length, { timeout: 5000 }).toBe(1);
      expect(graph.requests[0]).toMatchObject({ method: "POST", path: "/v18.0/1002/messages" });
      expect(graph.requests[0]?.headers.authorization).toBe("Bearer EAAG-token");
      expect(JSON.parse(graph.requests[0]?.body ?? "{}")).toMatchObject({
        messaging_product: "whatsapp",
        to: "4915",
        type: "text",
        text: { body: "¿En qué te ayudo?" },
      });
      const deliveries = async () =>
        (await call(t.baseUrl, "GET", `/v1/activities/${reply.id}/deliveries`, { key })).body.deliveries;
      await expect.poll(async () => (await deliveries())[0]?.status, { timeout: 5000 }).toBe("delivered");

      const status = change({
        statuses: [{ id: "wamid.OUT1", status: "read", timestamp: "1700000100", recipient_id: "4915" }],
      });
      const applied = await inbound(channel.id, status, sign(status, appSecret));
      expect(applied.body).toMatchObject({ statuses: 1, received: 0 });
      const row = await t.db.query("SELECT provider_status FROM deliveries WHERE provider_message_id = 'wamid.OUT1'");
      expect(row.rows).toEqual([{ provider_status: "read" }]);
    } finally {
      await graph.close();
    }
  });
});

describe("SSRF guard", () => {
  it("refuses private, loopback, metadata and non-http webhook URLs at config time", async () => {
    const strict = await startTestApp();
    try {
      const sf = fixtures(strict.baseUrl);
      const owner = await sf.tenant();
      for (const url of [
        "http://169.254.169.254/latest/meta-data",
        "http://localhost:5432",
        "http://[::1]/",
        "http://0x7f000001/",
        "http://10.0.0.8/hook",
        "http://[64:ff9b::a00:1]/",
        "http://[::ffff:127.0.0.1]/",
        "file:///etc/passwd",
      ]) {
        const res = await call(strict.baseUrl, "POST", "/v1/channels", {
          key: owner.key,
          body: { name: "w", type: "webhook", config: { url } },
        });
        expect(res.status, url).toBe(400);
        expect(JSON.stringify(res.body), url).toContain("config.url");
      }
    } finally {
      await strict.stop();
    }
  });

  it("refuses at send time a name that resolves to a private address, and does not follow redirects", async () => {
    const strict = await startTestApp({ DELIVERY_BACKOFF_BASE_MS: "10", DELIVERY_MAX_ATTEMPTS: "2" });
    const sink = await startHttpSink(() => ({ status: 302, headers: { location: "http://127.0.0.1:5432/" } }));
    try {
      const sf = fixtures(strict.baseUrl);
      const owner = await sf.tenant();
      // This machine's own name resolves to loopback; it passes the config-time name check.
      const channel = await sf.channel(owner.key, "webhook", {
        url: `http://${hostname()}:${new URL(sink.url).port}/`,
      });
      const { id } = await sf.conversation(owner.key, channel.id);
      const posted = (await sf.message(owner.key, id, "to a private name")).body;
      const deliveries = async () =>
        (await call(strict.baseUrl, "GET", `/v1/activities/${posted.id}/deliveries`, { key: owner.key })).body
          .deliveries;
      await expect.poll(async () => (await deliveries())[0]?.status, { timeout: 5000 }).toBe("failed");
      expect((await deliveries())[0].last_error).toMatch(/non-public/);
      expect(sink.requests).toHaveLength(0);

      const redirecting = await f.channel(key, "webhook", { url: sink.url });
      const conv = await f.conversation(key, redirecting.id);
      const redirected = (await f.message(key, conv.id, "follow me")).body;
      await expect
        .poll(
          async () =>
            (await call(t.baseUrl, "GET", `/v1/activities/${redirected.id}/deliveries`, { key })).body.deliveries[0]
              ?.last_error,
          { timeout: 5000 },
        )
        .toMatch(/HTTP 302/);
      expect(sink.requests.every((r) => r.path === "/")).toBe(true);
    } finally {
      await sink.close();
      await strict.stop();
    }
  });
});
