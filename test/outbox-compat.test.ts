import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fixtures, startTestApp, type TestApp } from "./helpers/app.js";
import { startHttpSink } from "./helpers/http-sink.js";

// Envelopes have a schema now (envelopes.proto); the outbox must hold the JSON it always held,
// and rows written before the change, still waiting in an outbox at upgrade time, must go out.
let t: TestApp;
let key: string;
let f: ReturnType<typeof fixtures>;
beforeAll(async () => {
  t = await startTestApp({ WEBHOOK_ALLOW_PRIVATE: "true" });
  f = fixtures(t.baseUrl);
  key = (await f.tenant()).key;
});
afterAll(() => t?.stop());

describe("outbox envelopes across the upgrade", () => {
  it("stores an activity's envelope as {type:'activity.created', activity:<the activity as REST shows it>}", async () => {
    const channel = await f.channel(key, "echo");
    const { id } = await f.conversation(key, channel.id);
    const posted = (await f.message(key, id, "pinned")).body;
    const { rows } = await t.db.query("SELECT topic, payload FROM outbox WHERE key = $1", [id]);
    expect(rows).toEqual([{ topic: "converger.activities", payload: { type: "activity.created", activity: posted } }]);
  });

  it("delivers an activity whose outbox row the old code wrote, with the activity JSON it carried", async () => {
    const sink = await startHttpSink();
    try {
      const channel = await f.channel(key, "webhook", { url: sink.url });
      const { id: conversationId } = await f.conversation(key, channel.id);
      const { rows } = await t.db.query("SELECT tenant_id FROM conversations WHERE id = $1", [conversationId]);
      const tenantId = rows[0].tenant_id;
      const activity = {
        id: randomUUID(),
        conversation_id: conversationId,
        tenant_id: tenantId,
        seq: "1",
        type: "message",
        text: "written before the upgrade",
        attachments: [],
        from: { id: "u1", name: "Ann" },
        metadata: { k: 1 },
        created_at: "2026-01-02T03:04:05.120Z",
      };
      // The old writer's row, as it built it: the payload literal of activity-batch.ts before envelopes.proto.
      await t.db.query(
        `WITH bump AS (UPDATE conversations SET last_seq = 1 WHERE id = $2),
              stored AS (
                INSERT INTO activities (id, conversation_id, tenant_id, seq, type, text, attachments, from_id,
                                        from_name, metadata, created_at)
                VALUES ($1, $2, $3, 1, 'message', $4, '[]', 'u1', 'Ann', '{"k":1}', $5))
         INSERT INTO outbox (event_id, topic, key, tenant_id, payload)
         VALUES (gen_random_uuid(), 'converger.activities', $2, $3, $6)`,
        [
          activity.id,
          conversationId,
          tenantId,
          activity.text,
          activity.created_at,
          JSON.stringify({ type: "activity.created", activity }),
        ],
      );
      await expect.poll(() => sink.requests.length, { timeout: 10_000 }).toBe(1);
      const body = JSON.parse(sink.requests[0]?.body ?? "{}");
      expect(body).toMatchObject({ event: "activity" });
      expect(body.activity).toEqual(activity);
    } finally {
      await sink.close();
    }
  });
});
