import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, fixtures, startTestApp, type TestApp } from "./helpers/app.js";
import { openStoredChannel } from "./helpers/sealed.js";

let t: TestApp;
let key: string;
beforeAll(async () => {
  t = await startTestApp();
  key = (await fixtures(t.baseUrl).tenant()).key;
});
afterAll(() => t?.stop());

const VALID: Record<string, Record<string, unknown>> = {
  echo: {},
  websocket: {},
  webhook: { url: "https://hooks.example.com/in", headers: { "X-Token": "abc" }, method: "put" },
  whatsapp_meta: { phone_number_id: "123", access_token: "EAAG", verify_token: "vt", app_secret: "as" },
  whatsapp_infobip: { base_url: "https://api.infobip.com", api_key: "ib-key", sender: "447860099299" },
  telegram: { bot_token: "123:ABC" },
  instagram: { instagram_account_id: "17841", access_token: "IGQ" },
  messenger: { page_id: "p1", page_access_token: "EAAP", base_url: "https://graph.example.com/v18.0" },
};

const create = (type: string, config: unknown, name = `${type} ch`) =>
  call(t.baseUrl, "POST", "/v1/channels", { key, body: { name, type, config } });

describe("channels", () => {
  it.each(Object.entries(VALID))("creates a %s channel with its secret shown once", async (type, config) => {
    const res = await create(type, config);
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ type, status: "active", name: `${type} ch` });
    expect(res.body.secret).toMatch(/^cvs_/);
    const got = await call(t.baseUrl, "GET", `/v1/channels/${res.body.id}`, { key });
    expect(got.body.secret).toBeUndefined();
  });

  it("lists every channel type with the config fields its form shows", async () => {
    const res = await call(t.baseUrl, "GET", "/v1/channel-types", { key });
    expect(res.status).toBe(200);
    const types = res.body.types as { type: string; fields: { name: string }[]; served_by_stream?: boolean }[];
    expect(types.map((x) => x.type).sort()).toEqual(
      [
        "echo",
        "instagram",
        "messenger",
        "telegram",
        "webhook",
        "websocket",
        "whatsapp_infobip",
        "whatsapp_meta",
      ].sort(),
    );
    const byType = Object.fromEntries(types.map((x) => [x.type, x]));
    expect(byType.webhook?.fields).toContainEqual({ name: "url", kind: "url", required: true, secret: false });
    expect(byType.whatsapp_meta?.fields).toContainEqual({
      name: "access_token",
      kind: "string",
      required: true,
      secret: true,
    });
    expect(byType.websocket?.served_by_stream).toBe(true);
    expect((await call(t.baseUrl, "GET", "/v1/channel-types", {})).status).toBe(401);
  });

  it("redacts secret config values on every read", async () => {
    const res = await create("whatsapp_meta", VALID.whatsapp_meta);
    expect(res.body.config).toEqual({
      phone_number_id: "123",
      access_token: "[redacted]",
      verify_token: "[redacted]",
      app_secret: "[redacted]",
    });
    const got = await call(t.baseUrl, "GET", `/v1/channels/${res.body.id}`, { key });
    expect(got.body.config.access_token).toBe("[redacted]");
    const list = await call(t.baseUrl, "GET", "/v1/channels?limit=100", { key });
    expect(JSON.stringify(list.body)).not.toContain("EAAG");
  });

  it("normalizes the webhook method and keeps headers", async () => {
    const res = await create("webhook", VALID.webhook);
    expect(res.body.config).toEqual({
      url: "https://hooks.example.com/in",
      headers: { "X-Token": "abc" },
      method: "PUT",
    });
  });

  it.each([
    ["webhook", {}, "config.url"],
    ["webhook", { url: "ftp://x.example.com" }, "config.url"],
    ["webhook", { url: "not a url" }, "config.url"],
    ["webhook", { url: "https://x.example.com", method: "DELETE" }, "config.method"],
    ["webhook", { url: "https://x.example.com", headers: { "Bad Header": "x" } }, "config.headers.Bad Header"],
    ["whatsapp_meta", { phone_number_id: "1", access_token: "a", verify_token: "v" }, "config.app_secret"],
    ["whatsapp_infobip", { api_key: "k", sender: "s" }, "config.base_url"],
    ["telegram", { bot_token: 42 }, "config.bot_token"],
    ["instagram", { instagram_account_id: "1" }, "config.access_token"],
    ["messenger", { page_access_token: "t" }, "config.page_id"],
    ["echo", { surprise: true }, "config.surprise"],
    ["webhook", { url: "https://x.example.com", rate_limit_per_second: 0 }, "config.rate_limit_per_second"],
    ["webhook", { url: "https://x.example.com", rate_limit_per_second: -1 }, "config.rate_limit_per_second"],
    ["webhook", { url: "https://x.example.com", rate_limit_per_second: "x" }, "config.rate_limit_per_second"],
    ["webhook", { url: "https://x.example.com", rate_limit_per_second: "5" }, "config.rate_limit_per_second"],
    ["webhook", { url: "https://x.example.com", rate_limit_per_second: 1.5 }, "config.rate_limit_per_second"],
    ["webhook", { url: "https://x.example.com", rate_limit_per_second: 1e9 }, "config.rate_limit_per_second"],
    ["telegram", { bot_token: "1:A", rate_limit_per_second: 0 }, "config.rate_limit_per_second"],
    ["websocket", { rate_limit_per_second: 5 }, "config.rate_limit_per_second"],
  ])("rejects an invalid %s config with 400 naming %s", async (type, config, field) => {
    const before = await t.db.query("SELECT count(*)::int AS n FROM channels");
    const res = await create(type, config);
    expect(res.status).toBe(400);
    expect(res.body.details[0].debug.field).toBe(field);
    const after = await t.db.query("SELECT count(*)::int AS n FROM channels");
    expect(after.rows[0].n).toBe(before.rows[0].n);
  });

  it.each(Object.entries(VALID).filter(([type]) => type !== "echo" && type !== "websocket"))(
    "takes rate_limit_per_second on a %s channel and reads it back, with health",
    async (type, config) => {
      const res = await create(type, { ...config, rate_limit_per_second: 25 });
      expect(res.status).toBe(201);
      expect(res.body.config.rate_limit_per_second).toBe(25);
      const got = await call(t.baseUrl, "GET", `/v1/channels/${res.body.id}`, { key });
      expect(got.body).toMatchObject({ health: "healthy", config: { rate_limit_per_second: 25 } });
      const patched = await call(t.baseUrl, "PATCH", `/v1/channels/${res.body.id}`, {
        key,
        body: { config: { ...config, rate_limit_per_second: 0 } },
      });
      expect(patched.status).toBe(400);
      expect(patched.body.details[0].debug.field).toBe("config.rate_limit_per_second");
    },
  );

  it("rejects an unknown type and a missing type with 400", async () => {
    expect((await create("carrier_pigeon", {})).body.details[0].debug.field).toBe("type");
    const missing = await call(t.baseUrl, "POST", "/v1/channels", { key, body: { name: "x" } });
    expect(missing.status).toBe(400);
    expect(missing.body.details[0].debug).toEqual({ field: "type", description: "is required" });
  });

  it("refuses private and metadata webhook URLs unless WEBHOOK_ALLOW_PRIVATE", async () => {
    for (const url of [
      "http://127.0.0.1:9/x",
      "http://169.254.169.254/latest",
      "http://10.0.0.5/",
      "http://localhost/",
      "http://localhost./",
      "http://api.LOCALHOST../",
      "http://2130706433/",
      "http://0x7f.1/",
      "http://0177.0.0.1/",
      "http://127.1/",
      "http://[::1]/",
      "http://[::ffff:127.0.0.1]/",
      "http://[::ffff:7f00:1]/",
      "http://[::ffff:a9fe:a9fe]/",
    ]) {
      const res = await create("webhook", { url });
      expect(res.status, url).toBe(400);
    }
    const open = await startTestApp({ WEBHOOK_ALLOW_PRIVATE: "true" });
    try {
      const k = (await fixtures(open.baseUrl).tenant()).key;
      const res = await call(open.baseUrl, "POST", "/v1/channels", {
        key: k,
        body: { name: "local", type: "webhook", config: { url: "http://127.0.0.1:9/x" } },
      });
      expect(res.status).toBe(201);
    } finally {
      await open.stop();
    }
  });

  it("updates name, status and config, keeping secrets left out or sent back redacted", async () => {
    const created = await create("whatsapp_meta", VALID.whatsapp_meta);
    const id = created.body.id;
    const renamed = await call(t.baseUrl, "PATCH", `/v1/channels/${id}`, {
      key,
      body: { name: "WA", status: "inactive" },
    });
    expect(renamed.body).toMatchObject({ name: "WA", status: "inactive" });
    const reconfigured = await call(t.baseUrl, "PATCH", `/v1/channels/${id}`, {
      key,
      body: { config: { ...renamed.body.config, phone_number_id: "999", verify_token: "new-vt" } },
    });
    expect(reconfigured.status).toBe(200);
    const stored = await openStoredChannel(t, id, ["access_token", "verify_token", "app_secret"]);
    expect(stored.config).toEqual({
      phone_number_id: "999",
      access_token: "EAAG",
      verify_token: "new-vt",
      app_secret: "as",
    });
    const invalid = await call(t.baseUrl, "PATCH", `/v1/channels/${id}`, {
      key,
      body: { config: { phone_number_id: "" } },
    });
    expect(invalid.status).toBe(400);
  });

  it("rotates the channel secret and shows the new one once", async () => {
    const created = await create("echo", {});
    const rotated = await call(t.baseUrl, "POST", `/v1/channels/${created.body.id}/rotate-secret`, { key });
    expect(rotated.status).toBe(200);
    expect(rotated.body.secret).toMatch(/^cvs_/);
    expect(rotated.body.secret).not.toBe(created.body.secret);
    const stored = await openStoredChannel(t, created.body.id);
    expect(stored.secret).toBe(rotated.body.secret);
  });

  it("pages through channels with a cursor", async () => {
    const k = (await fixtures(t.baseUrl).tenant("pager")).key;
    for (let i = 0; i < 5; i++) await fixtures(t.baseUrl).channel(k, "echo");
    const seen: string[] = [];
    let cursor = "";
    for (let page = 0; page < 5; page++) {
      const res = await call(t.baseUrl, "GET", `/v1/channels?limit=2${cursor ? `&cursor=${cursor}` : ""}`, { key: k });
      seen.push(...res.body.channels.map((c: { id: string }) => c.id));
      cursor = res.body.next_cursor;
      if (!cursor) break;
    }
    expect(seen).toHaveLength(5);
    expect(new Set(seen).size).toBe(5);
  });
});
