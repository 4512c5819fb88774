import { randomUUID } from "node:crypto";
import type { JsonObject } from "@bufbuild/protobuf";
import { keysetPage } from "../../common/db/keyset.js";
import type { Pool, PoolClient } from "../../common/db/pool.js";
import type { Page } from "../../common/rpc/pagination.js";
import type { TryTiming } from "./attempts.js";
import { type CircuitPolicy, circuitPolicy, OPEN_CIRCUIT } from "./circuits.js";
import { countMatching, type RetryFilter, retryMatching, retryOne } from "./retries.js";

export type DeliveryStatusName = "pending" | "delivered" | "failed";

export interface DeliveryRow {
  id: string;
  tenant_id: string;
  activity_id: string;
  conversation_id: string;
  seq: string;
  channel_id: string;
  external_id: string | null;
  activity: JsonObject;
  status: DeliveryStatusName;
  attempts: number;
  last_error: string | null;
  next_attempt_at: Date | null;
  delivered_at: Date | null;
  provider_message_id: string | null;
  created_at: Date;
  updated_at: Date;
  sort_key: string;
}

export interface NewDelivery {
  tenantId: string;
  activityId: string;
  conversationId: string;
  seq: string;
  channelId: string;
  externalId: string | null;
  activity: JsonObject;
  /** Recorded as delivered at once (nothing to send for its channel type). */
  delivered?: boolean;
}

// A claim outlives the slowest try (10 s HTTP timeout) by far; an expired one is taken again.
const LEASE_SECONDS = 60;

const COLUMNS = `id, tenant_id, activity_id, conversation_id, seq, channel_id, external_id, activity, status,
  attempts, last_error, next_attempt_at, delivered_at, provider_message_id, created_at, updated_at,
  created_at::text AS sort_key`;

/** Where a failed try leaves its channel's circuit. */
export interface TryFailure {
  error: string;
  /** No try is left: the delivery is failed. */
  final: boolean;
  retryInMs: number;
  /** A transient failure of the send itself, counted by the circuit (lookups and rejections are not). */
  countsForCircuit: boolean;
  timing: TryTiming;
}

// DELIVERY_CIRCUIT_COOLDOWN_MS's default.
const DEFAULT_CIRCUIT = circuitPolicy(5_000);

export function createDeliveryStore(pool: Pool, circuit: CircuitPolicy = DEFAULT_CIRCUIT) {
  return {
    /** Records many deliveries in one statement; existing ones (redelivered events) are left alone. */
    async insertMany(client: PoolClient, list: NewDelivery[]): Promise<number> {
      if (list.length === 0) return 0;
      const rows = list.map((d) => ({
        id: randomUUID(),
        tenant_id: d.tenantId,
        activity_id: d.activityId,
        conversation_id: d.conversationId,
        seq: d.seq,
        channel_id: d.channelId,
        external_id: d.externalId,
        activity: d.activity,
        delivered: d.delivered ?? false,
      }));
      const { rowCount } = await client.query(
        `INSERT INTO deliveries (id, tenant_id, activity_id, conversation_id, seq, channel_id, external_id,
                                 activity, status, next_attempt_at, delivered_at)
         SELECT id, tenant_id, activity_id, conversation_id, seq, channel_id, external_id, activity,
                CASE WHEN delivered THEN 'delivered' ELSE 'pending' END,
                -- A channel whose circuit is open takes it when its cool-down ends.
                CASE WHEN delivered THEN NULL ELSE greatest(now(), (
                  SELECT c.opened_until FROM channel_circuits c
                  WHERE c.channel_id = v.channel_id AND c.state = 'open')) END,
                CASE WHEN delivered THEN now() END
         FROM jsonb_to_recordset($1::jsonb) AS v(id uuid, tenant_id uuid, activity_id uuid, conversation_id uuid,
           seq bigint, channel_id uuid, external_id text, activity jsonb, delivered boolean)
         ORDER BY conversation_id, seq
         ON CONFLICT (activity_id, channel_id) DO NOTHING`,
        [JSON.stringify(rows)],
      );
      return rowCount ?? 0;
    },

    /**
     * Claims up to `limit` due deliveries, each the head of its (conversation,
     * channel) line: a delivery waits while an earlier one of its line is
     * pending, so a retrying one holds back only its own conversation.
     */
    async claimDue(limit: number): Promise<DeliveryRow[]> {
      const { rows } = await pool.query<DeliveryRow>(
        `WITH due AS (
           SELECT d.id FROM deliveries d
           WHERE d.status = 'pending' AND d.next_attempt_at <= now()
             AND (d.lease_until IS NULL OR d.lease_until < now())
             -- An open (or half-open) circuit lets only its probe through (circuits.ts claimProbes).
             AND NOT ${OPEN_CIRCUIT("d.channel_id")}
             AND NOT EXISTS (
               SELECT 1 FROM deliveries e
               WHERE e.status = 'pending' AND e.conversation_id = d.conversation_id
                 AND e.channel_id = d.channel_id AND e.seq < d.seq)
             -- A line with a delivery out on a lease has its runner (a retried earlier one must wait for it).
             AND NOT EXISTS (
               SELECT 1 FROM deliveries l
               WHERE l.status = 'pending' AND l.conversation_id = d.conversation_id
                 AND l.channel_id = d.channel_id AND l.lease_until >= now())
           ORDER BY d.next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
         UPDATE deliveries SET lease_until = now() + make_interval(secs => $2)
         FROM due WHERE deliveries.id = due.id
         RETURNING deliveries.*, deliveries.created_at::text AS sort_key`,
        [limit, LEASE_SECONDS],
      );
      return rows;
    },

    /** When the next pending delivery falls due (for the worker's timer), if any. */
    async nextDueAt(): Promise<Date | undefined> {
      // Rows waiting behind an earlier one of their line may look due already; the worker's
      // minimum idle time keeps that from turning into a busy loop.
      // A channel whose circuit is open has its next try when the cool-down (or the probe out) ends.
      const { rows } = await pool.query<{ at: Date | null }>(
        `SELECT min(greatest(d.next_attempt_at, d.lease_until, c.opened_until, c.probe_until)) AS at
         FROM deliveries d LEFT JOIN channel_circuits c ON c.channel_id = d.channel_id AND c.state = 'open'
         WHERE d.status = 'pending'`,
      );
      return rows[0]?.at ?? undefined;
    },

    /**
     * Claims the next delivery of a line a worker holds, if it is due: the
     * lowest pending seq of (conversation, channel) other than `after`, which
     * the caller just finished. Not due (a retry waiting) → nothing: the line
     * pauses, so its order holds.
     */
    async claimNextInLine(conversationId: string, channelId: string, after: string): Promise<DeliveryRow | undefined> {
      const { rows } = await pool.query<DeliveryRow>(
        `WITH head AS (
           SELECT id, next_attempt_at, lease_until FROM deliveries
           WHERE conversation_id = $1 AND channel_id = $2 AND status = 'pending' AND id <> $3
           ORDER BY seq LIMIT 1 FOR UPDATE)
         UPDATE deliveries d SET lease_until = now() + make_interval(secs => $4)
         FROM head
         WHERE d.id = head.id AND head.next_attempt_at <= now()
           AND (head.lease_until IS NULL OR head.lease_until < now()) AND NOT ${OPEN_CIRCUIT("$2")}
         RETURNING d.*, d.created_at::text AS sort_key`,
        [conversationId, channelId, after, LEASE_SECONDS],
      );
      return rows[0];
    },

    /**
     * For many lines at once (one statement instead of two per delivery):
     * marks each given delivery delivered and claims the next due delivery of
     * its line, as claimNextInLine does. Returns both sets of rows.
     */
    async completeAndClaimNext(
      completed: { id: string; providerMessageId?: string; timing: TryTiming }[],
    ): Promise<{ done: DeliveryRow[]; next: DeliveryRow[] }> {
      const input = completed.map((c) => ({
        id: c.id,
        provider_message_id: c.providerMessageId ?? null,
        started_at: c.timing.startedAt,
        finished_at: c.timing.finishedAt,
        http_status: c.timing.httpStatus ?? null,
      }));
      const { rows } = await pool.query<DeliveryRow & { kind: "done" | "next" }>(
        `WITH input AS (
           SELECT * FROM jsonb_to_recordset($1::jsonb)
             AS v(id uuid, provider_message_id text, started_at timestamptz, finished_at timestamptz, http_status integer)),
         done AS (
           UPDATE deliveries d SET status = 'delivered', attempts = d.attempts + 1, last_error = NULL,
             next_attempt_at = NULL, lease_until = NULL, delivered_at = now(),
             provider_message_id = input.provider_message_id, updated_at = now()
           FROM input WHERE d.id = input.id AND d.status = 'pending'
           RETURNING d.*),
         tried AS (
           INSERT INTO delivery_attempts (delivery_id, tenant_id, kind, attempt, started_at, finished_at, outcome,
                                          http_status)
           SELECT done.id, done.tenant_id, 'try', done.attempts, input.started_at, input.finished_at, 'delivered',
                  input.http_status
           FROM done JOIN input ON input.id = done.id),
         -- A delivered try closes its channel's circuit (written only when there is something to reset).
         closed AS (
           UPDATE channel_circuits c SET consecutive_failures = 0, state = 'closed', opened_until = NULL,
             cooldown_ms = 0, probe_delivery_id = NULL, probe_until = NULL, updated_at = now()
           WHERE c.channel_id IN (SELECT channel_id FROM done)
             AND (c.consecutive_failures > 0 OR c.state <> 'closed' OR c.probe_delivery_id IS NOT NULL)),
         heads AS (
           SELECT DISTINCT ON (d.conversation_id, d.channel_id) d.id
           FROM deliveries d JOIN done ON d.conversation_id = done.conversation_id AND d.channel_id = done.channel_id
           WHERE d.status = 'pending' AND d.id NOT IN (SELECT id FROM input)
           ORDER BY d.conversation_id, d.channel_id, d.seq),
         claimed AS (
           UPDATE deliveries d SET lease_until = now() + make_interval(secs => $2)
           FROM heads WHERE d.id = heads.id AND d.status = 'pending' AND d.next_attempt_at <= now()
             AND (d.lease_until IS NULL OR d.lease_until < now()) AND NOT ${OPEN_CIRCUIT("d.channel_id")}
           RETURNING d.*)
         SELECT 'done' AS kind, done.*, done.created_at::text AS sort_key FROM done
         UNION ALL
         SELECT 'next' AS kind, claimed.*, claimed.created_at::text AS sort_key FROM claimed`,
        [JSON.stringify(input), LEASE_SECONDS],
      );
      return { done: rows.filter((r) => r.kind === "done"), next: rows.filter((r) => r.kind === "next") };
    },

    /** Gives a claimed delivery back before its lease ends (a line handing over to others); a probe too. */
    async release(id: string): Promise<void> {
      await pool.query(
        `WITH probe AS (
           UPDATE channel_circuits SET probe_delivery_id = NULL, probe_until = NULL WHERE probe_delivery_id = $1)
         UPDATE deliveries SET lease_until = NULL WHERE id = $1 AND status = 'pending'`,
        [id],
      );
    },

    /**
     * Puts a claimed delivery back for a try in `inMs` without counting one
     * (paced out by its channel's rate limit); a probe's circuit may probe again.
     */
    async defer(id: string, inMs: number): Promise<DeliveryRow | undefined> {
      const { rows } = await pool.query<DeliveryRow>(
        `WITH probe AS (
           UPDATE channel_circuits SET probe_delivery_id = NULL, probe_until = NULL WHERE probe_delivery_id = $1)
         UPDATE deliveries SET lease_until = NULL, next_attempt_at = now() + make_interval(secs => $2 / 1000.0)
         WHERE id = $1 AND status = 'pending' RETURNING ${COLUMNS}`,
        [id, inMs],
      );
      return rows[0];
    },

    /**
     * Counts a failed try: pending again after `retryInMs`, or failed when
     * `final`. In the same statement its channel's circuit counts the failure:
     * the threshold reached opens it for the base cool-down, a failed probe
     * reopens it for twice the last one (capped). While the circuit is open
     * the channel's pending deliveries wait for the cool-down's end, their
     * attempts untouched.
     */
    async markTryFailed(id: string, failure: TryFailure) {
      const { rows } = await pool.query<DeliveryRow & { circuit_open_until: Date | null }>(
        `WITH target AS (
           SELECT id, channel_id, tenant_id FROM deliveries WHERE id = $1 AND status = 'pending' FOR UPDATE),
         circuit AS (
           INSERT INTO channel_circuits AS c (channel_id, tenant_id, consecutive_failures, state, opened_until,
                                              cooldown_ms)
           SELECT channel_id, tenant_id, 1, CASE WHEN $6::integer <= 1 THEN 'open' ELSE 'closed' END,
                  CASE WHEN $6::integer <= 1 THEN now() + make_interval(secs => $7::integer / 1000.0) END,
                  CASE WHEN $6::integer <= 1 THEN $7::integer ELSE 0 END
           FROM target WHERE $5::boolean
           ON CONFLICT (channel_id) DO UPDATE SET
             consecutive_failures = c.consecutive_failures + 1,
             state = CASE WHEN c.state = 'open' OR c.consecutive_failures + 1 >= $6::integer THEN 'open' ELSE 'closed' END,
             cooldown_ms = CASE
               WHEN c.state = 'closed' AND c.consecutive_failures + 1 >= $6::integer THEN $7::integer
               WHEN c.state = 'open' AND c.probe_delivery_id = $1 THEN least(c.cooldown_ms * 2, $8::integer)
               ELSE c.cooldown_ms END,
             opened_until = CASE
               WHEN c.state = 'closed' AND c.consecutive_failures + 1 >= $6::integer THEN now() + make_interval(secs => $7::integer / 1000.0)
               WHEN c.state = 'open' AND c.probe_delivery_id = $1
                 THEN now() + make_interval(secs => least(c.cooldown_ms * 2, $8::integer) / 1000.0)
               ELSE c.opened_until END,
             probe_delivery_id = CASE WHEN c.probe_delivery_id = $1 THEN NULL ELSE c.probe_delivery_id END,
             probe_until = CASE WHEN c.probe_delivery_id = $1 THEN NULL ELSE c.probe_until END,
             updated_at = now()
           RETURNING c.channel_id, c.state, c.opened_until),
         -- Not the endpoint's fault (a lookup, a rejected message): the probe, if this was it, is simply over.
         probe_over AS (
           UPDATE channel_circuits SET probe_delivery_id = NULL, probe_until = NULL
           WHERE probe_delivery_id = $1 AND NOT $5::boolean),
         failed AS (
           UPDATE deliveries d SET attempts = d.attempts + 1, last_error = $2, lease_until = NULL, updated_at = now(),
             status = CASE WHEN $3::boolean THEN 'failed' ELSE 'pending' END,
             next_attempt_at = CASE WHEN $3::boolean THEN NULL ELSE greatest(now() + make_interval(secs => $4 / 1000.0),
               (SELECT opened_until FROM circuit WHERE state = 'open')) END
           FROM target WHERE d.id = target.id
           RETURNING d.*),
         tried AS (
           INSERT INTO delivery_attempts (delivery_id, tenant_id, kind, attempt, started_at, finished_at, outcome,
                                          error, http_status)
           SELECT id, tenant_id, 'try', attempts, $9::timestamptz, $10::timestamptz, CASE WHEN status = 'failed' THEN 'failed' ELSE 'retry' END,
                  last_error, $11::integer
           FROM failed),
         -- Rows locked by others (a failed try being recorded, a claim) are skipped, never waited for: they
         -- set their own time, claims pass over an open circuit's deliveries anyway, and waiting here while
         -- holding the circuit row could deadlock. Rows a try is out for are moved too; its outcome wins.
         waiting AS (
           SELECT d.id, circuit.opened_until FROM deliveries d JOIN circuit ON d.channel_id = circuit.channel_id
           WHERE circuit.state = 'open' AND d.status = 'pending' AND d.id <> $1
             AND d.next_attempt_at < circuit.opened_until
           FOR UPDATE OF d SKIP LOCKED),
         held AS (
           UPDATE deliveries d SET next_attempt_at = waiting.opened_until FROM waiting WHERE d.id = waiting.id)
         SELECT ${COLUMNS}, (SELECT opened_until FROM circuit WHERE state = 'open') AS circuit_open_until
         FROM failed`,
        [
          id,
          failure.error.slice(0, 1000),
          failure.final,
          failure.retryInMs,
          failure.countsForCircuit,
          circuit.failureThreshold,
          circuit.baseCooldownMs,
          circuit.maxCooldownMs,
          failure.timing.startedAt,
          failure.timing.finishedAt,
          failure.timing.httpStatus ?? null,
        ],
      );
      return rows[0];
    },

    /** Schedules a delivery (failed or pending) for a try now (or when its open circuit allows), with a fresh try budget. */
    retry: (tenantId: string, id: string) => retryOne(pool, tenantId, id),
    /** Retries the oldest `max` deliveries of the tenant matching the filter, as retry does each. */
    retryMatching: (tenantId: string, filter: RetryFilter, max: number) => retryMatching(pool, tenantId, filter, max),
    /** What retryMatching would take now, changing nothing. */
    countMatching: (tenantId: string, filter: RetryFilter, max: number) => countMatching(pool, tenantId, filter, max),

    async get(tenantId: string, id: string): Promise<DeliveryRow | undefined> {
      const { rows } = await pool.query<DeliveryRow>(
        `SELECT ${COLUMNS} FROM deliveries WHERE id = $1 AND tenant_id = $2`,
        [id, tenantId],
      );
      return rows[0];
    },

    async listForActivity(tenantId: string, activityId: string): Promise<DeliveryRow[]> {
      const { rows } = await pool.query<DeliveryRow>(
        `SELECT ${COLUMNS} FROM deliveries WHERE activity_id = $1 AND tenant_id = $2 ORDER BY created_at, id`,
        [activityId, tenantId],
      );
      return rows;
    },

    /** Newest first; keyset (created_at, id) after `cursor`, or `offset`. */
    async list(
      tenantId: string,
      filter: { status?: DeliveryStatusName; channelId?: string },
      page: Page,
    ): Promise<DeliveryRow[]> {
      const keyset = keysetPage(page, { sortKey: "created_at", id: "id", idType: "uuid" }, 4);
      const { rows } = await pool.query<DeliveryRow>(
        `SELECT ${COLUMNS} FROM deliveries
         WHERE tenant_id = $1 AND ($2::text IS NULL OR status = $2) AND ($3::uuid IS NULL OR channel_id = $3)
           AND ${keyset.where} ${keyset.orderAndLimit}`,
        [tenantId, filter.status ?? null, filter.channelId ?? null, ...keyset.params],
      );
      return rows;
    },

    /** Applies a provider's status callback to the delivery of that provider message. */
    async applyProviderStatus(channelId: string, providerMessageId: string, status: string, error?: string) {
      const { rows } = await pool.query<DeliveryRow>(
        `WITH updated AS (
         UPDATE deliveries SET provider_status = $3, updated_at = now(),
           last_error = COALESCE($4, last_error),
           status = CASE WHEN $3 = 'failed' THEN 'failed'
                         WHEN $3 IN ('delivered', 'read') THEN 'delivered' ELSE status END,
           delivered_at = CASE WHEN $3 IN ('delivered', 'read') THEN COALESCE(delivered_at, now())
                               ELSE delivered_at END
         WHERE channel_id = $1 AND provider_message_id = $2 RETURNING *),
         noted AS (
           INSERT INTO delivery_attempts (delivery_id, tenant_id, kind, attempt, started_at, finished_at, error,
                                          provider_status)
           SELECT id, tenant_id, 'status', attempts, now(), now(), $4::text, $3::text FROM updated)
         SELECT ${COLUMNS} FROM updated`,
        [channelId, providerMessageId, status, error ?? null],
      );
      return rows[0];
    },

    async prune(retentionDays: number): Promise<number> {
      const { rowCount } = await pool.query(
        "DELETE FROM deliveries WHERE status = 'delivered' AND delivered_at < now() - make_interval(days => $1)",
        [retentionDays],
      );
      return rowCount ?? 0;
    },
  };
}

export type DeliveryStore = ReturnType<typeof createDeliveryStore>;
