import { createHmac } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, fixtures, startTestApp, type TestApp } from "./helpers/app.js";
import { openSocket } from "./helpers/ws.js";

let t: TestApp;
let f: ReturnType<typeof fixtures>;
let tenant: { id: string; key: string };
let channel: { id: string; secret: string };
let conversationId: string;
beforeAll(async () => {
  t = await startTestApp();
  f = fixtures(t.baseUrl);
  tenant = await f.tenant();
  channel = await f.channel(tenant.key, "webhook", { url: "https://hooks.example.com/x" });
  conversationId = (await f.conversation(tenant.key, channel.id)).id;
});
afterAll(() => t?.stop());

const storedActivities = async () => (await t.db.query("SELECT count(*)::int AS n FROM activities")).rows[0].n;
// biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON bodies
const fieldOf = (body: Record<string, any>) => body.details?.[0]?.debug?.field;

describe("U+0000 in client text", () => {
  it("answers 400 naming the field on REST, for plain, nested and Struct fields and JSON keys", async () => {
    const before = await storedActivities();
    const post = (body: string) =>
      call(t.baseUrl, "POST", `/v1/conversations/${conversationId}/activities`, { key: tenant.key, body });
    const message = (extra: Record<string, unknown>) =>
      JSON.stringify({ type: "message", text: "hi", from: { id: "agent" }, ...extra });
    const cases: [string, string][] = [
      [message({ text: "a\u0000b" }), "text"],
      [message({ from: { id: "agent", name: "A\u0000" } }), "from.name"],
      [message({ metadata: { note: "x\u0000" } }), "metadata.note"],
      [message({ metadata: { deep: { list: ["ok", "\u0000"] } } }), "metadata.deep.list[1]"],
      [message({ metadata: { "k\u0000": 1 } }), "metadata.k\\u0000"],
      [message({ attachments: [{ url: "https://x.example/\u0000" }] }), "attachments[0].url"],
    ];
    for (const [body, field] of cases) {
      const res = await post(body);
      expect(res.status, body).toBe(400);
      expect(res.body.code).toBe("invalid_argument");
      expect(fieldOf(res.body), body).toBe(field);
      expect(res.body.message, body).toContain("must not contain U+0000");
    }
    expect(await storedActivities()).toBe(before);
  });

  it("refuses it in repeated strings, channel names and the tenant event feed", async () => {
    const members = await call(t.baseUrl, "POST", "/v1/conversations", {
      key: tenant.key,
      body: { channel_id: channel.id, members: ["u\u0000"] },
    });
    expect(members.status).toBe(400);
    expect(fieldOf(members.body)).toBe("members[0]");
    const named = await call(t.baseUrl, "POST", "/v1/channels", {
      key: tenant.key,
      body: { name: "n\u0000", type: "websocket", config: {} },
    });
    expect(named.status).toBe(400);
    expect(fieldOf(named.body)).toBe("name");
    const event = await call(t.baseUrl, "POST", "/v1/events", {
      key: tenant.key,
      headers: { "x-tenant-id": tenant.id },
      body: { message: "e\u0000" },
    });
    expect(event.status).toBe(400);
    expect(fieldOf(event.body)).toBe("message");
  });

  it("answers an inbound webhook carrying it with 400 and stores nothing", async () => {
    const before = await storedActivities();
    for (const payload of [
      { external_id: "x1", message_id: "m1", from: { id: "u" }, text: "a\u0000" },
      { external_id: "x1", message_id: "m2", from: { id: "u" }, text: "ok", metadata: { "k\u0000": "v" } },
      { external_id: "x1", message_id: "m3", from: { id: "u", name: "\u0000" }, text: "ok" },
    ]) {
      const body = JSON.stringify(payload);
      const signature = `sha256=${createHmac("sha256", channel.secret).update(body).digest("hex")}`;
      const res = await call(t.baseUrl, "POST", `/v1/channels/${channel.id}/inbound`, {
        body,
        headers: { "content-type": "application/json", "x-hub-signature-256": signature },
      });
      expect(res.status, body).toBe(400);
      expect(JSON.stringify(res.body), body).toContain("must not contain U+0000");
    }
    expect(await storedActivities()).toBe(before);
  });

  it("answers a WebSocket frame carrying it with an error frame and keeps the socket", async () => {
    const minted = await call(t.baseUrl, "POST", "/v1/tokens", {
      token: channel.secret,
      body: { user: { id: "ws-user" }, conversation_id: conversationId },
    });
    const socket = await openSocket(`ws://127.0.0.1:${t.app.ports.edge}/ws?token=${minted.body.token}`);
    try {
      socket.send({ type: "activity", client_id: "c-nul", text: "a\u0000" });
      socket.send({ type: "activity", client_id: "c-nul-key", text: "ok", metadata: { "k\u0000": 1 } });
      const errors = await socket.collect((fr) => fr.type === "error", 2);
      expect(errors.map((e) => e.code)).toEqual(["invalid_argument", "invalid_argument"]);
      expect(errors[0]?.message).toContain("text: must not contain U+0000");
      expect(errors[0]?.client_id).toBe("c-nul");
      socket.send({ type: "activity", client_id: "c-ok", text: "fine" });
      expect((await socket.next((fr) => fr.type === "ack")).activity.text).toBe("fine");
    } finally {
      socket.ws.close();
    }
  });
});

describe("forged list cursors", () => {
  it("answers 400 naming the cursor for dates PostgreSQL refuses, U+0000 and ids of no row shape", async () => {
    const cursor = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
    for (const value of [
      ["2026-02-31 00:00:00+00", "6f1c1f5e-8a4b-4c43-9d8e-0c1b2a3d4e5f"],
      ["275760-09-13 00:00:00+00", "6f1c1f5e-8a4b-4c43-9d8e-0c1b2a3d4e5f"],
      ["2026-01-01 00:00:00+00", "6f1c1f5e\u0000"],
      ["2026-01-01 00:00:00\u0000", "6f1c1f5e-8a4b-4c43-9d8e-0c1b2a3d4e5f"],
    ]) {
      for (const path of ["/v1/conversations", "/v1/channels"]) {
        const res = await call(t.baseUrl, "GET", `${path}?cursor=${cursor(value)}`, { key: tenant.key });
        expect(res.status, `${path} ${JSON.stringify(value)}`).toBe(400);
        expect(fieldOf(res.body)).toBe("cursor");
      }
    }
  });
});
