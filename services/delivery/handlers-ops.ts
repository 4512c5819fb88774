import { setTimeout as sleep } from "node:timers/promises";
import { create, toJsonString } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  type DeliveryAttempt,
  DeliveryAttemptKind,
  DeliveryAttemptOutcome,
  type DeliveryCounts,
  type DeliveryService,
  DeliveryStatus,
  GetDeliveryStatsRequestSchema,
  GetDeliveryStatsResponseSchema,
  type RetryDeliveriesRequest,
} from "../../gen/converger/v1/delivery_pb.js";
import { tenantOf } from "../common/access/access.js";
import { kPrincipal } from "../common/access/context.js";
import type { Bus } from "../common/events/bus.js";
import { invalidField, notFound } from "../common/rpc/errors.js";
import { publishDelivery } from "./rows.js";
import type { AttemptRow, AttemptStore } from "./store/attempts.js";
import type { DeliveryStore } from "./store/deliveries.js";
import type { RetryFilter } from "./store/retries.js";
import type { CountsRow, DeliveryStatsStore } from "./store/stats.js";

/** The RPCs of the console's Deliveries page (design.md §10), apart from the core ones in handlers.ts. */
export type DeliveryOpsRpc = "listDeliveryAttempts" | "retryDeliveries" | "getDeliveryStats" | "watchDeliveryStats";

// How often a watched set of statistics is recomputed; unchanged ones are not sent again,
// except every KEEPALIVE_MS so that proxies do not take the quiet stream for a dead one.
const WATCH_INTERVAL_MS = 2_000;
const KEEPALIVE_MS = 30_000;

export interface DeliveryOpsDeps {
  deliveries: DeliveryStore;
  attempts: AttemptStore;
  stats: DeliveryStatsStore;
  bus: Bus;
  wakeWorker: () => void;
}

// RetryDeliveries' default and cap: one statement and one answer stay a few MB at most.
const MAX_BULK_RETRY = 10_000;
const DEFAULT_OVERDUE_AFTER_SECONDS = 60;
const DEFAULT_STATS_LIMIT = 50;

export function deliveryOpsImpl(deps: DeliveryOpsDeps): Pick<ServiceImpl<typeof DeliveryService>, DeliveryOpsRpc> {
  const impl: Pick<ServiceImpl<typeof DeliveryService>, DeliveryOpsRpc> = {
    async listDeliveryAttempts(req, ctx) {
      const tenantId = tenantOf(ctx.values.get(kPrincipal));
      const rows = await deps.attempts.timeline(tenantId, req.deliveryId);
      if (!rows) throw notFound("delivery");
      return { attempts: rows.map(attemptMessage) };
    },
    async retryDeliveries(req, ctx) {
      const tenantId = tenantOf(ctx.values.get(kPrincipal));
      const filter = retryFilterOf(req);
      const max = req.max > 0 ? req.max : MAX_BULK_RETRY;
      if (req.dryRun) return deps.deliveries.countMatching(tenantId, filter, max);
      const { retried, hasMore } = await deps.deliveries.retryMatching(tenantId, filter, max);
      for (const row of retried) publishDelivery(deps.bus, row);
      if (retried.length > 0) deps.wakeWorker();
      return { count: retried.length, hasMore };
    },
    async getDeliveryStats(req) {
      const limit = req.limit > 0 ? req.limit : DEFAULT_STATS_LIMIT;
      const overdueAfter = req.overdueAfterSeconds > 0 ? req.overdueAfterSeconds : DEFAULT_OVERDUE_AFTER_SECONDS;
      const [counts, overdue, blocked, circuits, deadLetters] = await Promise.all([
        deps.stats.counts(limit),
        deps.stats.overdue(overdueAfter),
        deps.stats.blockedLines(limit),
        deps.stats.openCircuits(limit),
        deps.stats.deadLetters(),
      ]);
      const total = countsOf(counts.find((r) => r.level === 3));
      return {
        total,
        tenants: counts.filter((r) => r.level === 1).map((r) => ({ tenantId: r.tenant_id ?? "", counts: countsOf(r) })),
        channels: counts
          .filter((r) => r.level === 0)
          .map((r) => ({ tenantId: r.tenant_id ?? "", channelId: r.channel_id ?? "", counts: countsOf(r) })),
        attention: {
          failed: total.failed,
          overdue,
          blockedLines: blocked.map((line) => ({
            tenantId: line.tenant_id,
            conversationId: line.conversation_id,
            channelId: line.channel_id,
            deliveryId: line.delivery_id,
            attempts: line.attempts,
            lastError: line.last_error ?? undefined,
            nextAttemptAt: line.next_attempt_at ? timestampFromDate(line.next_attempt_at) : undefined,
            waiting: BigInt(line.waiting),
          })),
          blockedLineCount: BigInt(blocked[0]?.lines ?? 0),
          openCircuits: circuits.map((c) => ({
            tenantId: c.tenant_id,
            channelId: c.channel_id,
            consecutiveFailures: c.consecutive_failures,
            openedUntil: timestampFromDate(c.opened_until),
            halfOpen: c.half_open,
          })),
          deadLetters: deadLetters.count,
          oldestDeadLetterAt: deadLetters.oldest ? timestampFromDate(deadLetters.oldest) : undefined,
        },
      };
    },
    async *watchDeliveryStats(req, ctx) {
      const statsRequest = create(GetDeliveryStatsRequestSchema, req.stats ?? {});
      let last = "";
      let sentAt = 0;
      while (!ctx.signal.aborted) {
        const stats = create(GetDeliveryStatsResponseSchema, await impl.getDeliveryStats(statsRequest, ctx));
        const json = toJsonString(GetDeliveryStatsResponseSchema, stats);
        if (json !== last || Date.now() - sentAt >= KEEPALIVE_MS) {
          last = json;
          sentAt = Date.now();
          yield stats;
        }
        // Ends early (rejecting) when the caller goes away; the loop's check then stops it.
        await sleep(WATCH_INTERVAL_MS, undefined, { signal: ctx.signal }).catch(() => undefined);
      }
    },
  };
  return impl;
}

function retryFilterOf(req: RetryDeliveriesRequest): RetryFilter {
  const channel = req.channelId ? { channelId: req.channelId } : {};
  switch (req.status) {
    case DeliveryStatus.UNSPECIFIED:
    case DeliveryStatus.FAILED:
      return { status: "failed", ...channel };
    case DeliveryStatus.PENDING:
      return { status: "pending", ...channel };
    default:
      throw invalidField("status", "must be failed or pending: delivered deliveries are not retried");
  }
}

function countsOf(row: CountsRow | undefined): DeliveryCounts {
  return {
    $typeName: "converger.v1.DeliveryCounts",
    pending: BigInt(row?.pending ?? 0),
    delivered: BigInt(row?.delivered ?? 0),
    failed: BigInt(row?.failed ?? 0),
  };
}

const KIND: Record<AttemptRow["kind"], DeliveryAttemptKind> = {
  try: DeliveryAttemptKind.TRY,
  status: DeliveryAttemptKind.STATUS,
  retry_requested: DeliveryAttemptKind.RETRY_REQUESTED,
};

const OUTCOME: Record<NonNullable<AttemptRow["outcome"]>, DeliveryAttemptOutcome> = {
  delivered: DeliveryAttemptOutcome.DELIVERED,
  retry: DeliveryAttemptOutcome.RETRY,
  failed: DeliveryAttemptOutcome.FAILED,
};

function attemptMessage(row: AttemptRow): DeliveryAttempt {
  return {
    $typeName: "converger.v1.DeliveryAttempt",
    id: row.id,
    deliveryId: row.delivery_id,
    kind: KIND[row.kind],
    attempt: row.attempt,
    startedAt: timestampFromDate(row.started_at),
    finishedAt: timestampFromDate(row.finished_at),
    durationMs: row.duration_ms,
    outcome: row.outcome ? OUTCOME[row.outcome] : DeliveryAttemptOutcome.UNSPECIFIED,
    error: row.error ?? undefined,
    httpStatus: row.http_status ?? undefined,
    providerStatus: row.provider_status ?? undefined,
  };
}
