import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../services/common/config.js";
import { createLogger } from "../services/common/obs/logger.js";
import { startApp } from "../services/host/app.js";
import { ADMIN_TOKEN, call, fixtures, startTestApp, type TestApp } from "./helpers/app.js";
import { createTestDatabase } from "./helpers/database.js";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t?.stop());

describe("gateway", () => {
  it("puts X-Request-Id on every response and keeps a well-formed incoming one", async () => {
    const ok = await call(t.baseUrl, "GET", "/healthz");
    const missingRoute = await call(t.baseUrl, "GET", "/v1/nothing-here");
    const denied = await call(t.baseUrl, "GET", "/v1/channels");
    for (const res of [ok, missingRoute, denied]) expect(res.headers.get("x-request-id")).toMatch(/^[\w.:-]+$/);
    const kept = await call(t.baseUrl, "GET", "/healthz", { headers: { "x-request-id": "req-123" } });
    expect(kept.headers.get("x-request-id")).toBe("req-123");
    const replaced = await call(t.baseUrl, "GET", "/healthz", {
      headers: { "x-request-id": `bad/${"x".repeat(200)}` },
    });
    expect(replaced.headers.get("x-request-id")).not.toContain("bad");
  });

  it("answers unknown routes with 404 and wrong verbs with 405 and Allow", async () => {
    const missing = await call(t.baseUrl, "GET", "/v1/unknown");
    expect(missing.status).toBe(404);
    expect(missing.body.code).toBe("not_found");
    const wrongVerb = await call(t.baseUrl, "DELETE", "/v1/channels");
    expect(wrongVerb.status).toBe(405);
    expect(wrongVerb.headers.get("allow")).toContain("POST");
  });

  it("answers health and readiness", async () => {
    expect((await call(t.baseUrl, "GET", "/healthz")).body).toEqual({ status: "ok" });
    const ready = await call(t.baseUrl, "GET", "/readyz");
    expect(ready.status).toBe(200);
    expect(ready.body.checks).toEqual({
      conversations: "ok",
      auth: "ok",
      realtime: "ok",
      delivery: "ok",
      uploads: "ok",
      bus: "ok",
    });
  });

  it("serves the same RPCs over the Connect protocol", async () => {
    const { key } = await fixtures(t.baseUrl).tenant();
    const res = await fetch(`${t.baseUrl}/converger.v1.ChannelsService/ListChannels`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": key },
      body: JSON.stringify({ limit: 5 }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({});
    const denied = await fetch(`${t.baseUrl}/converger.v1.ChannelsService/ListChannels`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(denied.status).toBe(401);
  });

  it("accepts seq and watermark as numbers or strings and renders them as strings", async () => {
    const f = fixtures(t.baseUrl);
    const { key } = await f.tenant();
    const conv = await f.conversation(key, (await f.channel(key)).id);
    await f.message(key, conv.id, "a");
    const asNumber = await call(t.baseUrl, "POST", `/v1/conversations/${conv.id}/read`, {
      key,
      body: { user_id: "u", watermark: 1 },
    });
    const asString = await call(t.baseUrl, "POST", `/v1/conversations/${conv.id}/read`, {
      key,
      body: { user_id: "u", watermark: "1" },
    });
    expect(asNumber.body.read_up_to).toBe("1");
    expect(asString.body.read_up_to).toBe("1");
  });
});

describe("logs", () => {
  it("writes one JSON object per line with service, request_id and trace_id, and never a secret", async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        lines.push(...chunk.toString().split("\n").filter(Boolean));
        done();
      },
    });
    const config = loadConfig({
      PORT: "0",
      GRPC_PORT: "0",
      DATABASE_URL: await createTestDatabase(),
      ADMIN_TOKEN,
      LOG_LEVEL: "info",
    });
    const app = await startApp(config, createLogger("info", sink));
    try {
      const base = `http://127.0.0.1:${app.ports.gateway}`;
      const tenant = await call(base, "POST", "/admin/v1/tenants", { token: ADMIN_TOKEN, body: { name: "logged" } });
      const key = tenant.body.api_key as string;
      const channel = await call(base, "POST", "/v1/channels", { key, body: { name: "c", type: "echo", config: {} } });
      await call(base, "GET", "/v1/channels", { key: `${key.slice(0, -1)}x` });
      const all = lines.join("\n");
      expect(all).not.toContain(key);
      expect(all).not.toContain(ADMIN_TOKEN);
      expect(all).not.toContain(channel.body.secret);
      const requests = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === "request");
      expect(requests.length).toBeGreaterThanOrEqual(3);
      for (const line of requests) {
        expect(line).toMatchObject({ level: "info", service: "gateway", msg: "request" });
        expect(Date.parse(line.time)).not.toBeNaN();
        expect(line.request_id).toBeTruthy();
        expect(line.trace_id, JSON.stringify(line)).toMatch(/^[0-9a-f]{32}$/);
      }
    } finally {
      await app.stop();
    }
  });
});
