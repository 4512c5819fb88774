import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, fixtures, startTestApp, type TestApp } from "./helpers/app.js";

let t: TestApp;
let tenant: { id: string; key: string };
beforeAll(async () => {
  t = await startTestApp();
  tenant = await fixtures(t.baseUrl).tenant();
});
afterAll(() => t?.stop());

const post = (path: string, message: unknown, tenantId = tenant.id, key = tenant.key) =>
  call(t.baseUrl, "POST", path, { key, headers: { "X-Tenant-ID": tenantId }, body: { message } });

describe("tenant event feed", () => {
  it("stores an event, streams it as event_created and lists newest first on both paths", async () => {
    const frames: unknown[] = [];
    const off = t.app.bus.subscribe(`tenant:${tenant.id}`, (frame) => frames.push(frame));
    const first = await post("/v1/events", "deploy started");
    const second = await post("/events", "deploy finished");
    off();
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ tenant_id: tenant.id, message: "deploy started" });
    expect(Date.parse(first.body.timestamp)).not.toBeNaN();
    expect(frames).toEqual([
      { type: "event_created", event: first.body },
      { type: "event_created", event: second.body },
    ]);
    for (const path of ["/v1/events", "/events"]) {
      const list = await call(t.baseUrl, "GET", path, { key: tenant.key });
      expect(list.body.events.map((e: { message: string }) => e.message)).toEqual([
        "deploy finished",
        "deploy started",
      ]);
    }
    const outbox = await t.db.query("SELECT count(*)::int AS n FROM outbox WHERE topic = 'converger.events'");
    expect(outbox.rows[0].n).toBe(2);
  });

  it("answers 403 when X-Tenant-ID names another tenant, and 400 when it is missing", async () => {
    const other = await fixtures(t.baseUrl).tenant("Other");
    expect((await post("/v1/events", "x", other.id)).status).toBe(403);
    const missing = await call(t.baseUrl, "POST", "/v1/events", { key: tenant.key, body: { message: "x" } });
    expect(missing.status).toBe(400);
    expect(missing.body.details[0].debug.field).toBe("tenant_id");
  });

  it("accepts 1 to 500 characters", async () => {
    expect((await post("/v1/events", "")).status).toBe(400);
    expect((await post("/v1/events", "a".repeat(501))).status).toBe(400);
    expect((await post("/v1/events", "é".repeat(500))).status).toBe(201);
    expect((await post("/v1/events", 42)).status).toBe(400);
  });
});
