import { randomUUID } from "node:crypto";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Pool, PoolClient } from "../common/db/pool.js";
import { conflict, connectErrorFromPg, notFound } from "../common/errors.js";
import { activityColumns } from "./store/activities.js";
import type { ActivityRow } from "./store/rows.js";

/** An activity to store; `id` is chosen by the caller so retries stay stable. */
export interface ActivityDraft {
  id: string;
  tenantId: string;
  conversationId: string;
  type: "message" | "event";
  text: string;
  attachments: JsonObject[];
  fromId: string;
  fromName: string;
  metadata: JsonObject;
  originChannelId: string | null;
  idempotency?: { key: string; requestHash: Buffer };
}

export interface WriteOutcome {
  row: ActivityRow;
  json: JsonValue;
  /** True when an idempotency key matched an earlier identical request. */
  replayed: boolean;
}

export interface ActivityWriterOptions {
  pool: Pool;
  idempotencyTtlHours: number;
  /** Public JSON of an activity, stored in the outbox and pushed live. */
  render: (row: ActivityRow) => JsonValue;
  /** Called right after each commit with the new activities in commit order. */
  onCommitted: (written: WriteOutcome[]) => void;
  /** A failing onCommitted is reported here; the writes stand. */
  onError: (error: unknown) => void;
}

// Bounded so that one transaction stays short and its statement parameters small.
const MAX_BATCH = 256;
// Transactions in flight at once. Each waits on a few round trips through a busy
// event loop; overlapping them keeps PostgreSQL and the loop both working. Order
// still holds: writers lock a conversation row in turn, so per conversation the
// commit order is the seq order.
const MAX_IN_FLIGHT = 4;

interface Pending {
  draft: ActivityDraft;
  resolve: (outcome: WriteOutcome) => void;
  reject: (error: unknown) => void;
}

type Result = { ok: WriteOutcome } | { error: unknown };

/**
 * Group commit: concurrent writes are gathered while earlier transactions
 * run and stored together in one transaction (one fsync for many rows).
 * Within a batch, each conversation's row lock hands out consecutive seqs, so
 * seq stays gap-free and per-conversation order holds across processes. One
 * bad request never fails its neighbours: a failed batch is retried item by item.
 */
export function createActivityWriter(options: ActivityWriterOptions) {
  const queue: Pending[] = [];
  let inFlight = 0;
  let scheduled = false;

  function pump(): void {
    scheduled = false;
    while (inFlight < MAX_IN_FLIGHT && queue.length > 0) {
      inFlight++;
      void flush(queue.splice(0, MAX_BATCH)).finally(() => {
        inFlight--;
        pump();
      });
    }
  }

  async function flush(batch: Pending[]): Promise<void> {
    const leaders = new Map<string, Pending>();
    const followers: [Pending, Pending][] = [];
    for (const item of batch) {
      const dedupe = item.draft.idempotency ? keyOf(item.draft) : item.draft.id;
      const leader = leaders.get(dedupe);
      if (leader) followers.push([item, leader]);
      else leaders.set(dedupe, item);
    }
    const items = [...leaders.values()];
    const results = await commitOrSplit(items);
    for (const [i, item] of items.entries()) settle(item, results[i] as Result);
    for (const [follower, leader] of followers) {
      settle(follower, results[items.indexOf(leader)] as Result, leader);
    }
  }

  /** A follower shares its leader's key: it replays the leader's outcome if its body matches. */
  function settle(item: Pending, result: Result, leader?: Pending): void {
    if ("error" in result) item.reject(result.error);
    else if (!leader) item.resolve(result.ok);
    else settleFollower(item, result.ok, leader);
  }

  function settleFollower(item: Pending, ok: WriteOutcome, leader: Pending): void {
    const leaderHash = leader.draft.idempotency?.requestHash as Buffer;
    if (item.draft.idempotency?.requestHash.equals(leaderHash)) item.resolve({ ...ok, replayed: true });
    else item.reject(keyReused());
  }

  async function commitOrSplit(items: Pending[]): Promise<Result[]> {
    let results: Result[];
    try {
      results = await commit(items);
    } catch (error) {
      // A COMMIT that failed may still have committed: retrying could store twice.
      if (error instanceof AmbiguousCommitError) {
        const unknown = new ConnectError("outcome unknown: retry with the same Idempotency-Key", Code.Unavailable);
        return items.map(() => ({ error: unknown }));
      }
      if (items.length === 1) return [{ error: connectErrorFromPg(error) }];
      const one: Result[] = [];
      for (const item of items) one.push(...(await commitOrSplit([item])));
      return one;
    }
    // Outside the error path above: whatever happens here, the batch is committed and must not be retried.
    const written = results.flatMap((r) => ("ok" in r && !r.ok.replayed ? [r.ok] : []));
    if (written.length > 0) {
      try {
        options.onCommitted(written);
      } catch (error) {
        options.onError(error);
      }
    }
    return results;
  }

  async function commit(items: Pending[]): Promise<Result[]> {
    const client = await options.pool.connect();
    try {
      await client.query("BEGIN");
      const results = await writeBatch(client, items);
      await client.query("COMMIT").catch((error: unknown) => {
        throw new AmbiguousCommitError(error);
      });
      return results;
    } catch (error) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  async function writeBatch(client: PoolClient, items: Pending[]): Promise<Result[]> {
    const results: (Result | undefined)[] = new Array(items.length).fill(undefined);
    const drafts = items.map((i) => i.draft);
    const { conversations, now } = await lockConversations(client, drafts);
    for (const [i, d] of drafts.entries()) {
      const c = conversations.get(d.conversationId);
      if (!c || c.tenant_id !== d.tenantId) results[i] = { error: notFound("conversation") };
      else if (c.status !== "active") results[i] = { error: conflict("conversation is closed") };
    }
    await claimIdempotencyKeys(client, drafts, results);
    const fresh = drafts.flatMap((_, i) => (results[i] ? [] : [i]));
    if (fresh.length === 0) return results as Result[];
    const rows: ActivityRow[] = [];
    for (const i of fresh) {
      const d = drafts[i] as ActivityDraft;
      const c = conversations.get(d.conversationId) as LockedConversation;
      c.last_seq += 1n;
      const row = toRow(d, c.last_seq, now);
      rows.push(row);
      results[i] = { ok: { row, json: options.render(row), replayed: false } };
    }
    await insertActivities(
      client,
      rows,
      fresh.map((i) => (results[i] as { ok: WriteOutcome }).ok.json),
    );
    return results as Result[];
  }

  /** Locks each conversation row in id order (no deadlocks between writers). */
  async function lockConversations(client: PoolClient, drafts: ActivityDraft[]) {
    const ids = [...new Set(drafts.map((d) => d.conversationId))];
    const { rows } = await client.query<{ id: string; tenant_id: string; status: string; last_seq: string; now: Date }>(
      `SELECT c.id, c.tenant_id, c.status, c.last_seq::text AS last_seq, now() AS now
       FROM conversations c WHERE c.id = ANY($1::uuid[]) ORDER BY c.id FOR UPDATE`,
      [ids],
    );
    const conversations = new Map<string, LockedConversation>();
    for (const r of rows) conversations.set(r.id, { ...r, last_seq: BigInt(r.last_seq) });
    const now = rows[0]?.now ?? new Date();
    return { conversations, now };
  }

  /**
   * Claims each key for its request; a live key held by an earlier request
   * turns the item into a replay (same body) or a conflict (different body).
   * Expired keys are taken over.
   */
  async function claimIdempotencyKeys(client: PoolClient, drafts: ActivityDraft[], results: (Result | undefined)[]) {
    const keyed = drafts.flatMap((d, i) => (d.idempotency && !results[i] ? [i] : []));
    if (keyed.length === 0) return;
    const pick = <T>(f: (d: ActivityDraft) => T) => keyed.map((i) => f(drafts[i] as ActivityDraft));
    const claimed = await client.query<{ conversation_id: string; key: string }>(
      `INSERT INTO idempotency_keys AS k (tenant_id, conversation_id, key, request_hash, activity_id, expires_at)
       SELECT t, c, k, h, a, now() + make_interval(hours => $6)
       FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bytea[], $5::uuid[]) AS v(t, c, k, h, a)
       ON CONFLICT (tenant_id, conversation_id, key) DO UPDATE
         SET request_hash = excluded.request_hash, activity_id = excluded.activity_id, expires_at = excluded.expires_at
         WHERE k.expires_at < now()
       RETURNING conversation_id, key`,
      [
        pick((d) => d.tenantId),
        pick((d) => d.conversationId),
        pick((d) => d.idempotency?.key),
        pick((d) => d.idempotency?.requestHash),
        pick((d) => d.id),
        options.idempotencyTtlHours,
      ],
    );
    const won = new Set(claimed.rows.map((r) => `${r.conversation_id}|${r.key}`));
    const lost = keyed.filter((i) => !won.has(`${drafts[i]?.conversationId}|${drafts[i]?.idempotency?.key}`));
    if (lost.length === 0) return;
    const earlier = await client.query<ActivityRow & { key: string; request_hash: Buffer }>(
      `SELECT ik.key, ik.request_hash, ${activityColumns("a")}
       FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS v(t, c, k)
       JOIN idempotency_keys ik ON ik.tenant_id = v.t AND ik.conversation_id = v.c AND ik.key = v.k
       JOIN activities a ON a.id = ik.activity_id`,
      [
        lost.map((i) => drafts[i]?.tenantId),
        lost.map((i) => drafts[i]?.conversationId),
        lost.map((i) => drafts[i]?.idempotency?.key),
      ],
    );
    for (const i of lost) {
      const d = drafts[i] as ActivityDraft;
      const match = earlier.rows.find(
        (r) => r.conversation_id === d.conversationId && r.key === d.idempotency?.key && r.tenant_id === d.tenantId,
      );
      if (!match) results[i] = { error: new ConnectError("idempotency key is in use, retry", Code.Aborted) };
      else if (!match.request_hash.equals(d.idempotency?.requestHash as Buffer)) results[i] = { error: keyReused() };
      else {
        const { key: _k, request_hash: _h, ...row } = match;
        results[i] = { ok: { row, json: options.render(row), replayed: true } };
      }
    }
  }

  /**
   * One statement: bump each conversation's last_seq, insert the activities
   * and their outbox rows. Rows travel as one JSON array (jsonb_to_recordset)
   * rather than a parameter array per column: serializing them is one native
   * JSON.stringify instead of escaping every value in JavaScript.
   */
  async function insertActivities(client: PoolClient, rows: ActivityRow[], payloads: JsonValue[]) {
    const records = rows.map((row, i) => ({
      ...row,
      event_id: randomUUID(),
      payload: { type: "activity.created", activity: payloads[i] },
    }));
    await client.query(
      `WITH v AS (
         SELECT * FROM jsonb_to_recordset($1::jsonb) AS v(
           id uuid, conversation_id uuid, tenant_id uuid, seq bigint, type text, text text, attachments jsonb,
           from_id text, from_name text, metadata jsonb, origin_channel_id uuid, event_id uuid, payload jsonb)),
       bump AS (
         UPDATE conversations c SET last_seq = m.last_seq, activity_at = now(), updated_at = now()
         FROM (SELECT conversation_id, max(seq) AS last_seq FROM v GROUP BY conversation_id) m
         WHERE c.id = m.conversation_id),
       inserted AS (
         INSERT INTO activities (id, conversation_id, tenant_id, seq, type, text, attachments, from_id, from_name,
                                 metadata, origin_channel_id, created_at)
         SELECT id, conversation_id, tenant_id, seq, type, text, attachments, from_id, from_name,
                metadata, origin_channel_id, now() FROM v)
       INSERT INTO outbox (event_id, topic, key, tenant_id, payload)
       SELECT event_id, 'converger.activities', conversation_id::text, tenant_id, payload FROM v ORDER BY seq`,
      [JSON.stringify(records)],
    );
  }

  return {
    write(draft: ActivityDraft): Promise<WriteOutcome> {
      return new Promise((resolve, reject) => {
        queue.push({ draft, resolve, reject });
        if (!scheduled) {
          scheduled = true;
          // Let requests arriving in the same turn of the event loop join this batch.
          setImmediate(pump);
        }
      });
    },
  };
}

/** COMMIT failed on the wire: the transaction may or may not have committed. */
class AmbiguousCommitError extends Error {
  constructor(readonly original: unknown) {
    super("commit outcome unknown", { cause: original });
  }
}

interface LockedConversation {
  id: string;
  tenant_id: string;
  status: string;
  last_seq: bigint;
}

function keyOf(d: ActivityDraft): string {
  return `${d.tenantId}|${d.conversationId}|${d.idempotency?.key}`;
}

function keyReused(): ConnectError {
  return new ConnectError("Idempotency-Key was already used with a different request", Code.AlreadyExists);
}

function toRow(d: ActivityDraft, seq: bigint, now: Date): ActivityRow {
  return {
    id: d.id,
    conversation_id: d.conversationId,
    tenant_id: d.tenantId,
    seq: seq.toString(),
    type: d.type,
    text: d.text,
    attachments: d.attachments,
    from_id: d.fromId,
    from_name: d.fromName,
    metadata: d.metadata,
    origin_channel_id: d.originChannelId,
    created_at: now,
  };
}
