import { randomUUID } from "node:crypto";
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConversationsService } from "../../gen/converger/v1/conversations_pb.js";
import { createTestDatabase } from "../../test/helpers/database.js";
import { createPrincipalTransports } from "../common/access/principal-transport.js";
import { createPool, type Pool } from "../common/db/pool.js";
import { createLogger } from "../common/obs/logger.js";
import { migrate } from "../host/db/migrate.js";
import { outboxImpl } from "./handlers/outbox.js";
import { conversationsMigrations } from "./service.js";

// No relay runs on this database: rows stay unpublished until the test says otherwise.
let pool: Pool;
beforeAll(async () => {
  pool = createPool(await createTestDatabase(), () => undefined, { schema: "conversations" });
  await migrate(pool, "conversations", conversationsMigrations.dir, createLogger("silent"));
});
afterAll(() => pool?.end());

const operator = () =>
  createClient(
    ConversationsService,
    createPrincipalTransports((router) => router.service(ConversationsService, outboxImpl(pool)))({ kind: "operator" }),
  );

async function outboxRow(ageSeconds: number, published: boolean) {
  await pool.query(
    `INSERT INTO outbox (event_id, topic, key, tenant_id, payload, created_at, published_at)
     VALUES ($1, 'converger.activities', 'k', $2, '{}', now() - make_interval(secs => $3),
             CASE WHEN $4::boolean THEN now() END)`,
    [randomUUID(), randomUUID(), ageSeconds, published],
  );
}

describe("GetOutboxStats", () => {
  it("answers no backlog and no age for an empty outbox", async () => {
    const stats = await operator().getOutboxStats({});
    expect(stats).toMatchObject({ backlog: 0n, oldestAgeSeconds: 0 });
    expect(stats.oldestCreatedAt).toBeUndefined();
  });

  it("counts unpublished rows only and dates the oldest of them", async () => {
    await outboxRow(600, true);
    await outboxRow(30, false);
    await outboxRow(5, false);
    const stats = await operator().getOutboxStats({});
    expect(stats.backlog).toBe(2n);
    expect(stats.oldestAgeSeconds).toBeGreaterThanOrEqual(30);
    expect(stats.oldestAgeSeconds).toBeLessThan(60);
    const oldest = await pool.query("SELECT created_at FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT 1");
    expect(Number(stats.oldestCreatedAt?.seconds)).toBe(Math.floor(oldest.rows[0].created_at.getTime() / 1000));
  });
});
