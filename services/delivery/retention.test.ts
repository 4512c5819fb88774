import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fixtures, startTestApp, type TestApp } from "../../test/helpers/app.js";
import { createDeliveryStore } from "./store/deliveries.js";

let t: TestApp;
let key: string;
let f: ReturnType<typeof fixtures>;
beforeAll(async () => {
  t = await startTestApp();
  f = fixtures(t.baseUrl);
  key = (await f.tenant()).key;
});
afterAll(() => t?.stop());

describe("retention", () => {
  it("prunes delivered rows past DELIVERY_RETENTION_DAYS and keeps the rest", async () => {
    const channel = await f.channel(key, "websocket");
    const { id } = await f.conversation(key, channel.id);
    const old = (await f.message(key, id, "old")).body;
    const recent = (await f.message(key, id, "recent")).body;
    await expect
      .poll(
        async () =>
          (
            await t.db.query(
              "SELECT count(*)::int AS n FROM deliveries WHERE conversation_id = $1 AND status = 'delivered'",
              [id],
            )
          ).rows[0].n,
        { timeout: 5000 },
      )
      .toBe(2);
    await t.db.query("UPDATE deliveries SET delivered_at = now() - interval '31 days' WHERE activity_id = $1", [
      old.id,
    ]);
    await createDeliveryStore(t.db).prune(30);
    const left = await t.db.query("SELECT activity_id FROM deliveries WHERE conversation_id = $1", [id]);
    expect(left.rows).toEqual([{ activity_id: recent.id }]);
  });
});
