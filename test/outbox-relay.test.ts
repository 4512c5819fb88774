import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPool, type Pool } from "../services/common/db/pool.js";
import { createInProcessLog, type EventLog, type LogRecord } from "../services/common/events/event-log.js";
import { createOutboxRelay } from "../services/common/events/outbox-relay.js";
import { createLogger } from "../services/common/obs/logger.js";
import { createTestDatabase } from "./helpers/database.js";

let pool: Pool;
beforeAll(async () => {
  pool = createPool(await createTestDatabase(), () => undefined);
  await pool.query(`CREATE TABLE outbox (
    id bigserial PRIMARY KEY, event_id uuid NOT NULL, topic text NOT NULL, key text NOT NULL,
    tenant_id uuid NOT NULL, payload jsonb NOT NULL, traceparent text, published_at timestamptz)`);
});
afterAll(() => pool?.end());

/** A logger whose `waitFor(msg)` resolves when a line with that message is written. */
function watchedLogger() {
  const waiting: { msg: string; resolve: () => void }[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      const { msg } = JSON.parse(chunk.toString()) as { msg: string };
      for (const w of waiting.filter((w) => w.msg === msg)) w.resolve();
      done();
    },
  });
  return {
    log: createLogger("error", destination),
    waitFor: (msg: string) => new Promise<void>((resolve) => waiting.push({ msg, resolve })),
  };
}

describe("outbox relay", () => {
  it("keeps relaying after being woken while it waits out the back-off of a failed append", async () => {
    const { log, waitFor } = watchedLogger();
    const inProcess = createInProcessLog({ retryBaseMs: 10, log });
    const consumed: LogRecord[] = [];
    await inProcess.consume({
      group: "probe",
      topic: "converger.activities",
      handle: async (record) => void consumed.push(record),
      deadLetter: async () => undefined,
    });
    let brokerDown = true;
    const eventLog: EventLog = {
      ...inProcess,
      async append(records) {
        if (brokerDown) throw Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
        await inProcess.append(records);
      },
    };
    const { rows } = await pool.query<{ key: string }>(
      `INSERT INTO outbox (event_id, topic, key, tenant_id, payload)
       VALUES (gen_random_uuid(), 'converger.activities', gen_random_uuid()::text, gen_random_uuid(), '{}')
       RETURNING key`,
    );
    const relay = createOutboxRelay({ pool, table: "outbox", log, eventLog, retentionHours: 24, pollIntervalMs: 50 });
    try {
      const failed = waitFor("outbox relay pass failed; rows stay in the outbox");
      relay.start();
      await failed;
      // A commit lands while the relay pauses after the failure (250 ms); its wake must not wedge the relay.
      relay.wake();
      brokerDown = false;
      const unpublished = async () =>
        (await pool.query("SELECT count(*)::int AS n FROM outbox WHERE published_at IS NULL")).rows[0].n;
      await expect.poll(unpublished, { timeout: 10_000 }).toBe(0);
      expect(consumed.map((r) => r.key)).toEqual([rows[0]?.key]);
    } finally {
      await relay.stop();
      await eventLog.close();
    }
  });
});
