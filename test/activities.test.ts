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

const activities = (conversationId: string) => `/v1/conversations/${conversationId}/activities`;

describe("activities", () => {
  it("answers 201 with the stored activity and seq 1, 2, …", async () => {
    const { id } = await f.conversation(key, channelId);
    const first = await f.message(key, id, "hello");
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({
      conversation_id: id,
      seq: "1",
      type: "message",
      text: "hello",
      from: { id: "agent-1", name: "Agent" },
      attachments: [],
      metadata: {},
    });
    expect(Date.parse(first.body.created_at)).not.toBeNaN();
    expect((await f.message(key, id, "again")).body.seq).toBe("2");
  });

  it("gives 200 concurrent posts the seqs 1..200 with no gap or duplicate, listed back in order", async () => {
    const { id } = await f.conversation(key, channelId);
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => f.message(key, id, `m${i}`)));
    expect(results.every((r) => r.status === 201)).toBe(true);
    const seqs = results.map((r) => Number(r.body.seq)).sort((a, b) => a - b);
    expect(seqs).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    const listed = await call(t.baseUrl, "GET", `${activities(id)}?limit=1000`, { key });
    expect(listed.body.activities.map((a: { seq: string }) => Number(a.seq))).toEqual(seqs);
    expect(listed.body.watermark).toBe("200");
    // Each text is stored once, under the seq its response named.
    const bySeq = new Map(results.map((r) => [r.body.seq, r.body.text]));
    for (const a of listed.body.activities) expect(bySeq.get(a.seq)).toBe(a.text);
  });

  it("keeps seqs gap-free per conversation when many conversations are written at once", async () => {
    const convs = await Promise.all(Array.from({ length: 5 }, () => f.conversation(key, channelId)));
    await Promise.all(convs.flatMap((c) => Array.from({ length: 30 }, (_, i) => f.message(key, c.id, `x${i}`))));
    for (const c of convs) {
      const listed = await call(t.baseUrl, "GET", activities(c.id), { key });
      expect(listed.body.activities.map((a: { seq: string }) => Number(a.seq))).toEqual(
        Array.from({ length: 30 }, (_, i) => i + 1),
      );
    }
  });

  it("stores one activity for 50 concurrent posts with one idempotency key", async () => {
    const { id } = await f.conversation(key, channelId);
    const results = await Promise.all(
      Array.from({ length: 50 }, () => f.message(key, id, "once", { "Idempotency-Key": "order-42" })),
    );
    const ids = new Set(results.map((r) => r.body.id));
    expect(ids.size).toBe(1);
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    const replays = results.filter((r) => r.status === 200);
    expect(replays).toHaveLength(49);
    expect(replays.every((r) => r.headers.get("idempotent-replayed") === "true")).toBe(true);
    const rows = await t.db.query("SELECT count(*)::int AS n FROM activities WHERE conversation_id = $1", [id]);
    expect(rows.rows[0].n).toBe(1);
  });

  it("replays a key later with 200 and answers 409 when the body differs", async () => {
    const { id } = await f.conversation(key, channelId);
    const first = await f.message(key, id, "pay", { "X-Idempotency-Key": "k-1" });
    const again = await f.message(key, id, "pay", { "Idempotency-Key": "k-1" });
    expect(again.status).toBe(200);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(again.body).toEqual(first.body);
    const different = await f.message(key, id, "refund", { "Idempotency-Key": "k-1" });
    expect(different.status).toBe(409);
    expect(different.body.code).toBe("already_exists");
    const count = await t.db.query("SELECT count(*)::int AS n FROM activities WHERE conversation_id = $1", [id]);
    expect(count.rows[0].n).toBe(1);
  });

  it("scopes idempotency keys to the conversation", async () => {
    const a = await f.conversation(key, channelId);
    const b = await f.conversation(key, channelId);
    const inA = await f.message(key, a.id, "same", { "Idempotency-Key": "shared" });
    const inB = await f.message(key, b.id, "same", { "Idempotency-Key": "shared" });
    expect(inA.status).toBe(201);
    expect(inB.status).toBe(201);
    expect(inA.body.id).not.toBe(inB.body.id);
  });

  it("answers typing with 202, broadcasts it and never stores it", async () => {
    const { id } = await f.conversation(key, channelId);
    const frames: unknown[] = [];
    const off = t.app.bus.subscribe(`conversation:${id}`, (frame) => frames.push(frame));
    const res = await call(t.baseUrl, "POST", activities(id), { key, body: { type: "typing", from: { id: "u1" } } });
    off();
    expect(res.status).toBe(202);
    expect(res.body.seq).toBe("0");
    expect(frames).toEqual([{ type: "typing", conversation_id: id, from: { id: "u1", name: "" } }]);
    const listed = await call(t.baseUrl, "GET", activities(id), { key });
    expect(listed.body.activities).toEqual([]);
  });

  it("pushes each committed activity to the bus in seq order and relays its outbox row", async () => {
    const { id } = await f.conversation(key, channelId);
    const pushed: string[] = [];
    const relayed: string[] = [];
    const off = t.app.bus.subscribe(`conversation:${id}`, (frame) => {
      pushed.push((frame.activity as { seq: string }).seq);
    });
    await t.app.eventLog.consume({
      group: `test-${id}`,
      topic: "converger.activities",
      async handle(record) {
        if (record.key === id) relayed.push((record.payload as { activity: { seq: string } }).activity.seq);
      },
      async deadLetter() {},
    });
    for (let i = 0; i < 5; i++) await f.message(key, id, `n${i}`);
    await expect.poll(() => relayed.length, { timeout: 5000 }).toBe(5);
    off();
    expect(pushed).toEqual(["1", "2", "3", "4", "5"]);
    expect(relayed).toEqual(["1", "2", "3", "4", "5"]);
    const outbox = await t.db.query(
      "SELECT count(*)::int AS n FROM outbox WHERE key = $1 AND published_at IS NOT NULL",
      [id],
    );
    expect(outbox.rows[0].n).toBe(5);
  });

  it("lists after a watermark given as seq or as activity id", async () => {
    const { id } = await f.conversation(key, channelId);
    const posted = [];
    for (let i = 0; i < 4; i++) posted.push((await f.message(key, id, `w${i}`)).body);
    const bySeq = await call(t.baseUrl, "GET", `${activities(id)}?watermark=2`, { key });
    expect(bySeq.body.activities.map((a: { seq: string }) => a.seq)).toEqual(["3", "4"]);
    expect(bySeq.body.watermark).toBe("4");
    const byId = await call(t.baseUrl, "GET", `${activities(id)}?watermark=${posted[0]?.id}&limit=2`, { key });
    expect(byId.body.activities.map((a: { seq: string }) => a.seq)).toEqual(["2", "3"]);
    expect(byId.body.watermark).toBe("3");
    const past = await call(t.baseUrl, "GET", `${activities(id)}?watermark=10`, { key });
    expect(past.body).toEqual({ activities: [], watermark: "10" });
    const bad = await call(t.baseUrl, "GET", `${activities(id)}?watermark=abc`, { key });
    expect(bad.status).toBe(400);
  });

  it("answers 400 naming the field for integers past their type or not decimal", async () => {
    const { id } = await f.conversation(key, channelId);
    for (const query of [
      "watermark=9223372036854775808",
      "watermark=-9223372036854775809",
      "watermark=99999999999999999999",
      "watermark=1e400",
      "watermark=0x10",
      "watermark=12abc",
      "limit=99999999999999999999",
      "limit=0x10",
    ]) {
      const res = await call(t.baseUrl, "GET", `${activities(id)}?${query}`, { key });
      expect(res.status, query).toBe(400);
      expect(res.body.details[0].debug.field, query).toBe(query.split("=")[0]);
    }
    for (const query of ["limit=1e400", "offset=99999999999999999999", "offset=9223372036854775808", "limit=12abc"]) {
      const res = await call(t.baseUrl, "GET", `/v1/conversations?${query}`, { key });
      expect(res.status, query).toBe(400);
      expect(res.body.details[0].debug.field, query).toBe(query.split("=")[0]);
    }
    const read = await call(t.baseUrl, "POST", `/v1/conversations/${id}/read`, {
      key,
      body: { watermark: "9223372036854775808" },
    });
    expect(read.status).toBe(400);
    expect(read.body.details[0].debug.field).toBe("watermark");
  });

  it("refuses posts to a closed conversation with 409 and stores nothing", async () => {
    const { id } = await f.conversation(key, channelId);
    const closed = await call(t.baseUrl, "POST", `/v1/conversations/${id}/close`, { key });
    expect(closed.status).toBe(200);
    expect(closed.body.status).toBe("closed");
    const res = await f.message(key, id, "too late", { "Idempotency-Key": "late" });
    expect(res.status).toBe(409);
    expect(res.body.code).toBe("failed_precondition");
    const typing = await call(t.baseUrl, "POST", activities(id), { key, body: { type: "typing", from: { id: "u" } } });
    expect(typing.status).toBe(409);
    const rows = await t.db.query(
      "SELECT (SELECT count(*) FROM activities WHERE conversation_id = $1)::int AS a, (SELECT count(*) FROM idempotency_keys WHERE conversation_id = $1)::int AS k",
      [id],
    );
    expect(rows.rows[0]).toEqual({ a: 0, k: 0 });
  });
});

describe("bad activity input", () => {
  let id: string;
  beforeAll(async () => {
    id = (await f.conversation(key, channelId)).id;
  });

  const post = (body: unknown, headers: Record<string, string> = {}) =>
    call(t.baseUrl, "POST", activities(id), { key, body, headers });

  it("answers malformed JSON with 400", async () => {
    const res = await post("{not json");
    expect(res.status).toBe(400);
    expect(res.body.code).toBe("invalid_argument");
  });

  it("answers a non-JSON content type with 415", async () => {
    const res = await post("type=message", { "content-type": "application/x-www-form-urlencoded" });
    expect(res.status).toBe(415);
  });

  it("names the field of an unknown enum value", async () => {
    const res = await post({ type: "shout", text: "x", from: { id: "u" } });
    expect(res.status).toBe(400);
    expect(res.body.message).toContain("type");
    expect(res.body.details[0].debug.field).toBe("type");
  });

  it("names a missing required field", async () => {
    const res = await post({ text: "x", from: { id: "u" } });
    expect(res.status).toBe(400);
    expect(res.body.details[0].debug).toEqual({ field: "type", description: "is required" });
    const noSender = await post({ type: "message", text: "x" });
    expect(noSender.status).toBe(400);
    expect(noSender.body.message).toContain("from.id");
  });

  it("rejects text over 10,000 characters with 400", async () => {
    const res = await post({ type: "message", text: "a".repeat(10_001), from: { id: "u" } });
    expect(res.status).toBe(400);
    expect(res.body.message).toContain("text");
  });

  it("rejects an unknown field with 400 naming it", async () => {
    const res = await post({ type: "message", text: "x", from: { id: "u" }, colour: "red" });
    expect(res.status).toBe(400);
    expect(res.body.message).toContain("colour");
  });

  it("answers a body over 1 MiB with 413, cleanly", async () => {
    const res = await post({
      type: "message",
      text: "x",
      from: { id: "u" },
      metadata: { blob: "a".repeat(1_100_000) },
    });
    expect(res.status).toBe(413);
    expect(res.body.code).toBe("resource_exhausted");
  });

  it("answers a non-UUID conversation id with 400", async () => {
    const res = await call(t.baseUrl, "POST", activities("not-a-uuid"), { key, body: { type: "message", text: "x" } });
    expect(res.status).toBe(400);
    expect(res.body.message).toContain("conversation_id");
  });

  it("writes nothing for any rejected request", async () => {
    const rows = await t.db.query(
      "SELECT (SELECT count(*) FROM activities WHERE conversation_id = $1)::int AS a, (SELECT count(*) FROM outbox WHERE key = $1::text)::int AS o",
      [id],
    );
    expect(rows.rows[0]).toEqual({ a: 0, o: 0 });
  });
});
