import { createHmac, randomUUID } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { loadConfig } from "../services/common/config.js";
import { createLogger } from "../services/common/obs/logger.js";
import { type App, startApp } from "../services/host/app.js";
import { call, fixtures, UNLIMITED } from "./helpers/app.js";
import { createTestDatabase } from "./helpers/database.js";
import { startHttpSink } from "./helpers/http-sink.js";
import { openSocket } from "./helpers/ws.js";

// Every credential this run creates or presents; none may appear in any log line.
const secrets: string[] = [];
const secret = (name: string) => {
  const value = `${name}-${randomUUID()}`;
  secrets.push(value);
  return value;
};
const lines: string[] = [];
const ADMIN = secret("admin-token");
let app: App;
let base: string;
let stopped = false;

const sign = (body: string, key: string) => `sha256=${createHmac("sha256", key).update(body).digest("hex")}`;

// A provider answering an error that quotes the credential it was sent (Authorization or the URL path).
const echoingProvider = () =>
  startHttpSink((req) => {
    const quoted = `${req.headers.authorization ?? ""} ${req.path}`;
    return {
      status: 401,
      body: {
        error: { message: `Invalid OAuth access token: ${quoted}`, code: 190 },
        requestError: { serviceException: { text: `bad key ${quoted}` } },
        ok: false,
        error_code: 401,
        description: `Unauthorized ${quoted}`,
      },
    };
  });

beforeAll(async () => {
  const config = loadConfig({
    ...UNLIMITED,
    HOST: "127.0.0.1",
    PORT: "0",
    GRPC_PORT: "0",
    WS_PORT: "0",
    DATABASE_URL: await createTestDatabase(),
    DATA_DIR: mkdtempSync(join(tmpdir(), "converger-logs-")),
    ADMIN_TOKEN: ADMIN,
    LOG_LEVEL: "debug",
    WEBHOOK_ALLOW_PRIVATE: "true",
    DELIVERY_MAX_ATTEMPTS: "1",
    DELIVERY_BACKOFF_BASE_MS: "20",
  });
  const root = createLogger("debug", { write: (line: string) => void lines.push(line) });
  app = await startApp(config, root);
  base = `http://127.0.0.1:${app.ports.gateway}`;
});
afterAll(async () => {
  if (!stopped) await app?.stop();
});

it("writes no credential of any kind into any log line of a full debug-level run", async () => {
  const f = fixtures(base);
  const provider = await echoingProvider();
  const webhookSink = await startHttpSink(() => ({ status: 500, body: { error: "down" } }));
  try {
    // Operator and tenant credentials, right and wrong, in headers and in query strings.
    await call(base, "GET", "/admin/v1/tenants", { token: secret("wrong-admin") });
    await call(base, "GET", `/admin/v1/tenants?access_token=${ADMIN}&token=${ADMIN}`);
    const created = await call(base, "POST", "/admin/v1/tenants", { token: ADMIN, body: { name: "Acme" } });
    const tenant = { id: created.body.id as string, key: created.body.api_key as string };
    secrets.push(tenant.key);
    await call(base, "GET", "/v1/conversations", { key: secret("cvg_wrongkey") });
    await call(base, "GET", `/v1/conversations?api_key=${tenant.key}&x-api-key=${tenant.key}`);
    const rotated = await call(base, "POST", `/admin/v1/tenants/${tenant.id}/rotate-key`, { token: ADMIN });
    secrets.push(rotated.body.api_key);
    const key = rotated.body.api_key as string;

    // Every channel type with its secret config, created and updated; webhook header values are secrets too.
    const webhook = await f.channel(key, "webhook", {
      url: `${webhookSink.url}/hook?token=${secret("url-token")}`,
      headers: { "X-Custom-Auth": secret("webhook-header") },
    });
    await call(base, "PATCH", `/v1/channels/${webhook.id}`, {
      key,
      body: { config: { url: webhookSink.url, headers: { "X-Custom-Auth": secret("webhook-header-2") } } },
    });
    const appSecret = secret("meta-app-secret");
    const verifyToken = secret("meta-verify");
    const meta = await f.channel(key, "whatsapp_meta", {
      phone_number_id: "1001",
      access_token: secret("meta-access"),
      verify_token: verifyToken,
      app_secret: appSecret,
      base_url: provider.url,
    });
    const infobip = await f.channel(key, "whatsapp_infobip", {
      base_url: provider.url,
      api_key: secret("infobip-key"),
      sender: "4477",
    });
    const telegram = await f.channel(key, "telegram", { bot_token: `123456:${secret("bot")}`, base_url: provider.url });
    const messenger = await f.channel(key, "messenger", {
      page_id: "p1",
      page_access_token: secret("page-token"),
      app_secret: secret("messenger-app-secret"),
    });
    await f.channel(key, "instagram", { instagram_account_id: "ig1", access_token: secret("instagram-token") });
    await call(base, "PATCH", `/v1/channels/${messenger.id}`, {
      key,
      body: { config: { page_access_token: secret("page-token-2") } },
    });
    const rotatedSecret = await call(base, "POST", `/v1/channels/${messenger.id}/rotate-secret`, { key });
    secrets.push(rotatedSecret.body.secret, webhook.secret, meta.secret, infobip.secret, telegram.secret);

    // Inbound webhooks: signed right and wrong, Meta's subscription check with the verify token in the query.
    const inbound = (id: string, body: unknown, signingKey: string) => {
      const text = JSON.stringify(body);
      return call(base, "POST", `/v1/channels/${id}/inbound`, {
        body: text,
        headers: { "x-hub-signature-256": sign(text, signingKey) },
      });
    };
    const metaMessage = {
      object: "whatsapp_business_account",
      entry: [
        {
          id: "waba",
          changes: [
            {
              field: "messages",
              value: {
                messaging_product: "whatsapp",
                metadata: { display_phone_number: "1555", phone_number_id: "1001" },
                contacts: [{ profile: { name: "Ana" }, wa_id: "4915" }],
                messages: [
                  { from: "4915", id: "wamid.1", timestamp: "1700000000", type: "text", text: { body: "Hola" } },
                ],
              },
            },
          ],
        },
      ],
    };
    const received = [
      await inbound(
        webhook.id,
        { external_id: "crm-1", message_id: "m1", from: { id: "u1" }, text: "hi" },
        webhook.secret,
      ),
      await inbound(meta.id, metaMessage, appSecret),
      await inbound(
        infobip.id,
        { results: [{ from: "4916", messageId: "ib-1", message: { type: "TEXT", text: "hi" } }] },
        infobip.secret,
      ),
      await inbound(
        telegram.id,
        { update_id: 1, message: { message_id: 1, chat: { id: 77 }, from: { id: 77, first_name: "T" }, text: "hi" } },
        telegram.secret,
      ),
    ];
    expect(received.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    expect((await inbound(meta.id, metaMessage, secret("guessed-app-secret"))).status).toBe(401);
    const challenge = `/v1/channels/${meta.id}/inbound?hub.mode=subscribe&hub.challenge=42&hub.verify_token=`;
    expect((await fetch(base + challenge + verifyToken)).status).toBe(200);
    expect((await fetch(base + challenge + secret("wrong-verify"))).status).toBe(403);

    // Deliveries to the providers that echo the credential back in their errors, and to a failing webhook.
    const conversations = await call(base, "GET", "/v1/conversations?limit=100", { key });
    for (const conversation of conversations.body.conversations) await f.message(key, conversation.id, "reply");
    await expect
      .poll(async () => (await call(base, "GET", "/v1/deliveries?status=failed", { key })).body.deliveries.length, {
        timeout: 10_000,
      })
      .toBe(4);

    // OAuth: client secret in a form body, wrong secrets, access and refresh tokens, reuse of a rotated one.
    const client = await call(base, "POST", "/v1/oauth-clients", {
      key,
      body: { name: "reporting", scopes: ["conversations:read"] },
    });
    const { client_id: clientId, client_secret: clientSecret } = client.body;
    secrets.push(clientSecret);
    const form = { "content-type": "application/x-www-form-urlencoded" };
    const grant = `grant_type=client_credentials&client_id=${clientId}`;
    const issued = await call(base, "POST", "/auth/token", {
      body: `${grant}&client_secret=${clientSecret}`,
      headers: form,
    });
    await call(base, "POST", "/auth/token", { body: `${grant}&client_secret=${secret("cvcs_wrong")}`, headers: form });
    const { access_token: accessToken, refresh_token: refreshToken } = issued.body;
    secrets.push(accessToken, refreshToken);
    const refreshed = await call(base, "POST", "/auth/refresh", { body: { refresh_token: refreshToken } });
    secrets.push(refreshed.body.access_token, refreshed.body.refresh_token);
    await call(base, "POST", "/auth/refresh", { body: { refresh_token: refreshToken } });
    expect((await call(base, "GET", "/v1/conversations", { token: accessToken })).status).toBe(200);
    await call(base, "GET", "/v1/conversations", { token: `${accessToken.slice(0, -4)}AAAA` });
    secrets.push(`${accessToken.slice(0, -4)}AAAA`);

    // Client tokens: minted with a channel secret and with the API key, used in headers, query strings and /ws.
    const minted = await call(base, "POST", "/v1/tokens", { token: webhook.secret, body: { user: { id: "alice" } } });
    const clientToken = minted.body.token as string;
    secrets.push(clientToken, await f.clientToken(key, minted.body.conversation_id, "bob"));
    await call(base, "POST", "/v1/tokens", { token: secret("cvs_wrong"), body: { user: { id: "eve" } } });
    await call(base, "GET", `/v1/conversations?token=${clientToken}&access_token=${clientToken}`);
    const socket = await openSocket(`ws://127.0.0.1:${app.ports.edge}/ws?token=${clientToken}&watermark=0`);
    socket.ws.close();
    await socket.closed;
    await openSocket(`ws://127.0.0.1:${app.ports.edge}/ws?token=${secret("bad-ws-token")}`).catch(() => undefined);
  } finally {
    await provider.close();
    await webhookSink.close();
  }
  app.log.info("sentinel: every flow ran");
  stopped = true;
  await app.stop();

  const log = lines.join("");
  // The flows reached the log: failed deliveries quoting providers, failed authentications, requests.
  expect(lines.filter((line) => line.includes('"delivery failed"')).length).toBe(4);
  expect(log).toContain('"authentication failed"');
  expect(log).toContain('"msg":"request"');
  expect(log).toContain("sentinel: every flow ran");
  const leaked = secrets.filter((value) => log.includes(value));
  expect(leaked).toEqual([]);
});
