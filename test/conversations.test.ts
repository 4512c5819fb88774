import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, fixtures, startTestApp, type TestApp } from "./helpers/app.js";

let t: TestApp;
let f: ReturnType<typeof fixtures>;
let key: string;
let channelId: string;

beforeAll(async () => {
  t = await startTestApp();
  f = fixtures(t.baseUrl);
  key = (await f.tenant()).key;
  channelId = (await f.channel(key)).id;
});
afterAll(() => t?.stop());

describe("conversations", () => {
  it("creates an active conversation with members and metadata", async () => {
    const res = await call(t.baseUrl, "POST", "/v1/conversations", {
      key,
      body: { channel_id: channelId, members: ["u1", "u2", "u1"], metadata: { topic: "billing", vip: true } },
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      channel_id: channelId,
      status: "active",
      members: ["u1", "u2"],
      metadata: { topic: "billing", vip: true },
      last_seq: "0",
    });
    expect(res.body.external_id).toBeUndefined();
    const got = await call(t.baseUrl, "GET", `/v1/conversations/${res.body.id}`, { key });
    expect(got.body).toEqual(res.body);
  });

  it("answers 409 on an inactive channel and 404 on an unknown one, storing nothing", async () => {
    const inactive = await f.channel(key, "echo");
    await call(t.baseUrl, "PATCH", `/v1/channels/${inactive.id}`, { key, body: { status: "inactive" } });
    const before = await t.db.query("SELECT count(*)::int AS n FROM conversations");
    const closed = await call(t.baseUrl, "POST", "/v1/conversations", { key, body: { channel_id: inactive.id } });
    expect(closed.status).toBe(409);
    const unknown = await call(t.baseUrl, "POST", "/v1/conversations", {
      key,
      body: { channel_id: "00000000-0000-4000-8000-000000000000" },
    });
    expect(unknown.status).toBe(404);
    const missing = await call(t.baseUrl, "POST", "/v1/conversations", { key, body: {} });
    expect(missing.status).toBe(400);
    expect(missing.body.details[0].debug.field).toBe("channel_id");
    const after = await t.db.query("SELECT count(*)::int AS n FROM conversations");
    expect(after.rows[0].n).toBe(before.rows[0].n);
  });

  it("closes a conversation", async () => {
    const { id } = await f.conversation(key, channelId);
    const res = await call(t.baseUrl, "POST", `/v1/conversations/${id}/close`, { key });
    expect(res.status).toBe(200);
    expect(res.body.status).toBe("closed");
  });

  it("lists newest activity first with a last_activity preview, paging by cursor and offset", async () => {
    const k = (await f.tenant("lister")).key;
    const ch = (await f.channel(k)).id;
    const a = await f.conversation(k, ch);
    const b = await f.conversation(k, ch);
    const c = await f.conversation(k, ch);
    await f.message(k, a.id, "a1");
    await f.message(k, b.id, "b1");
    await f.message(k, a.id, "a2");
    // Order now: a (latest activity), b, then c (no activity, created last of all but before those posts).
    const all = await call(t.baseUrl, "GET", "/v1/conversations", { key: k });
    expect(all.body.conversations.map((x: { id: string }) => x.id)).toEqual([a.id, b.id, c.id]);
    expect(all.body.conversations[0].last_activity).toMatchObject({ text: "a2", seq: "2" });
    expect(all.body.conversations[2].last_activity).toBeUndefined();
    expect(all.body.next_cursor).toBe("");
    const page1 = await call(t.baseUrl, "GET", "/v1/conversations?limit=2", { key: k });
    expect(page1.body.conversations).toHaveLength(2);
    const page2 = await call(t.baseUrl, "GET", `/v1/conversations?limit=2&cursor=${page1.body.next_cursor}`, {
      key: k,
    });
    expect(page2.body.conversations.map((x: { id: string }) => x.id)).toEqual([c.id]);
    expect(page2.body.next_cursor).toBe("");
    const byOffset = await call(t.baseUrl, "GET", "/v1/conversations?limit=1&offset=1", { key: k });
    expect(byOffset.body.conversations[0].id).toBe(b.id);
    const both = await call(t.baseUrl, "GET", `/v1/conversations?offset=1&cursor=${page1.body.next_cursor}`, {
      key: k,
    });
    expect(both.status).toBe(400);
  });

  it("defaults to 50 per page and caps limit at 100", async () => {
    const k = (await f.tenant("many")).key;
    const ch = (await f.channel(k)).id;
    await Promise.all(Array.from({ length: 55 }, () => f.conversation(k, ch)));
    const res = await call(t.baseUrl, "GET", "/v1/conversations", { key: k });
    expect(res.body.conversations).toHaveLength(50);
    expect(res.body.next_cursor).not.toBe("");
    expect((await call(t.baseUrl, "GET", "/v1/conversations?limit=500", { key: k })).status).toBe(400);
  });

  it("records read positions and streams them as read", async () => {
    const { id } = await f.conversation(key, channelId);
    await f.message(key, id, "one");
    await f.message(key, id, "two");
    const frames: unknown[] = [];
    const off = t.app.bus.subscribe(`conversation:${id}`, (frame) => frame.type === "read" && frames.push(frame));
    const res = await call(t.baseUrl, "POST", `/v1/conversations/${id}/read`, {
      key,
      body: { user_id: "u1", watermark: 1 },
    });
    expect(res.body).toEqual({ user_id: "u1", read_up_to: "1" });
    const latest = await call(t.baseUrl, "POST", `/v1/conversations/${id}/read`, { key, body: { user_id: "u1" } });
    expect(latest.body.read_up_to).toBe("2");
    off();
    expect(frames).toEqual([
      { type: "read", conversation_id: id, user_id: "u1", read_up_to: "1" },
      { type: "read", conversation_id: id, user_id: "u1", read_up_to: "2" },
    ]);
  });
});
