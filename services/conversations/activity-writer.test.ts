import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fixtures, startTestApp, type TestApp } from "../../test/helpers/app.js";
import { createActivityWriter } from "./activity-writer.js";
import { activityMessage } from "./store/rows.js";

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

describe("activity writer", () => {
  it("never stores a batch twice when the post-commit push throws", async () => {
    const { id } = await f.conversation(key, channelId);
    const tenantId = (await t.db.query("SELECT tenant_id FROM conversations WHERE id = $1", [id])).rows[0].tenant_id;
    const errors: unknown[] = [];
    const writer = createActivityWriter({
      pool: t.db,
      idempotencyTtlHours: 48,
      render: activityMessage,
      onCommitted: () => {
        throw new Error("subscriber exploded");
      },
      onError: (error) => errors.push(error),
    });
    const draft = (text: string) => ({
      id: randomUUID(),
      tenantId,
      conversationId: id,
      type: "message" as const,
      text,
      attachments: [],
      fromId: "u",
      fromName: "",
      metadata: {},
      originChannelId: null,
    });
    const outcomes = await Promise.all(["a", "b", "c"].map((text) => writer.write(draft(text))));
    expect(outcomes.map((o) => o.row.seq).sort()).toEqual(["1", "2", "3"]);
    const stored = await t.db.query("SELECT count(*)::int AS n FROM activities WHERE conversation_id = $1", [id]);
    expect(stored.rows[0].n).toBe(3);
    expect(errors.length).toBeGreaterThanOrEqual(1);
  });
});
