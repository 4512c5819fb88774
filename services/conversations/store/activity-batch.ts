import { randomUUID } from "node:crypto";
import { create, type JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Activity } from "../../../gen/converger/v1/conversations_pb.js";
import { ActivityCreatedSchema } from "../../../gen/converger/v1/envelopes_pb.js";
import type { PoolClient } from "../../common/db/pool.js";
import { ACTIVITIES_TOPIC, envelopePayload } from "../../common/events/envelopes.js";
import { conflict, notFound } from "../../common/rpc/errors.js";
import { activityColumns } from "./activities.js";
import type { ActivityRow } from "./rows.js";

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
  /** W3C traceparent of the writing request, for the outbox row. */
  traceparent?: string;
}

export interface WriteOutcome {
  row: ActivityRow;
  activity: Activity;
  /** True when an idempotency key matched an earlier identical request. */
  replayed: boolean;
}

export type Result = { ok: WriteOutcome } | { error: unknown };

export interface BatchOptions {
  idempotencyTtlHours: number;
  /** The activity of a row, as its outbox envelope and live frame carry it. */
  render: (row: ActivityRow) => Activity;
}

/**
 * The SQL of one group commit, inside the caller's transaction: lock the
 * conversations, claim idempotency keys, number the new activities and insert
 * them with their outbox rows. Returns one result per draft, in order.
 */
export async function writeBatch(
  client: PoolClient,
  drafts: ActivityDraft[],
  options: BatchOptions,
): Promise<Result[]> {
  const results: (Result | undefined)[] = new Array(drafts.length).fill(undefined);
  const { conversations, now } = await lockConversations(client, drafts);
  for (const [i, d] of drafts.entries()) {
    const c = conversations.get(d.conversationId);
    if (!c || c.tenant_id !== d.tenantId) results[i] = { error: notFound("conversation") };
    else if (c.status !== "active") results[i] = { error: conflict("conversation is closed") };
  }
  await claimIdempotencyKeys(client, drafts, results, options);
  const fresh = drafts.flatMap((_, i) => (results[i] ? [] : [i]));
  if (fresh.length === 0) return results as Result[];
  const rows: ActivityRow[] = [];
  for (const i of fresh) {
    const d = drafts[i] as ActivityDraft;
    const c = conversations.get(d.conversationId) as LockedConversation;
    c.last_seq += 1n;
    const row = toRow(d, c.last_seq, now);
    rows.push(row);
    results[i] = { ok: { row, activity: options.render(row), replayed: false } };
  }
  await insertActivities(
    client,
    rows,
    fresh.map((i) => (results[i] as { ok: WriteOutcome }).ok.activity),
    fresh.map((i) => drafts[i]?.traceparent),
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
async function claimIdempotencyKeys(
  client: PoolClient,
  drafts: ActivityDraft[],
  results: (Result | undefined)[],
  options: BatchOptions,
) {
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
      results[i] = { ok: { row, activity: options.render(row), replayed: true } };
    }
  }
}

/**
 * One statement: bump each conversation's last_seq, insert the activities
 * and their outbox rows. Rows travel as one JSON array (jsonb_to_recordset)
 * rather than a parameter array per column: serializing them is one native
 * JSON.stringify instead of escaping every value in JavaScript.
 */
async function insertActivities(
  client: PoolClient,
  rows: ActivityRow[],
  activities: Activity[],
  traceparents: (string | undefined)[],
) {
  const records = rows.map((row, i) => ({
    ...row,
    event_id: randomUUID(),
    payload: envelopePayload(create(ActivityCreatedSchema, { activity: activities[i] })),
    traceparent: traceparents[i] ?? null,
  }));
  await client.query(
    `WITH v AS (
       SELECT * FROM jsonb_to_recordset($1::jsonb) AS v(
         id uuid, conversation_id uuid, tenant_id uuid, seq bigint, type text, text text, attachments jsonb,
         from_id text, from_name text, metadata jsonb, origin_channel_id uuid, event_id uuid, payload jsonb,
         traceparent text)),
     bump AS (
       UPDATE conversations c SET last_seq = m.last_seq, activity_at = now(), updated_at = now()
       FROM (SELECT conversation_id, max(seq) AS last_seq FROM v GROUP BY conversation_id) m
       WHERE c.id = m.conversation_id),
     inserted AS (
       INSERT INTO activities (id, conversation_id, tenant_id, seq, type, text, attachments, from_id, from_name,
                               metadata, origin_channel_id, created_at)
       SELECT id, conversation_id, tenant_id, seq, type, text, attachments, from_id, from_name,
              metadata, origin_channel_id, now() FROM v)
     INSERT INTO outbox (event_id, topic, key, tenant_id, payload, traceparent)
     SELECT event_id, $2, conversation_id::text, tenant_id, payload, traceparent
     FROM v ORDER BY seq`,
    [JSON.stringify(records), ACTIVITIES_TOPIC],
  );
}

interface LockedConversation {
  id: string;
  tenant_id: string;
  status: string;
  last_seq: bigint;
}

export function keyReused(): ConnectError {
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
