import { Code, ConnectError } from "@connectrpc/connect";
import { ActivityType } from "../../gen/converger/v1/conversations_pb.js";
import { DeliverySchema } from "../../gen/converger/v1/delivery_pb.js";
import { DeliveryError, type OutboundActivity } from "../channels/adapter.js";
import type { OutboundHttp } from "../channels/http-out.js";
import { adapterOf } from "../channels/index.js";
import { type Bus, conversationTopic } from "../common/bus.js";
import type { EventLog } from "../common/event-log.js";
import { toApiJson } from "../common/json.js";
import type { Logger } from "../common/logger.js";
import { deliveriesTotal } from "../common/metrics.js";
import type { DeliveryDirectory } from "./directory.js";
import { deliveryMessage } from "./rows.js";
import type { DeliveryRow, DeliveryStore } from "./store/deliveries.js";

export const DELIVERIES_DLQ_TOPIC = "converger.deliveries.dlq";
// Deliveries claimed per pass; they go out concurrently (one per conversation line at most).
const BATCH = 64;
// Rows written or rescheduled by other processes are found within this long.
const MAX_IDLE_MS = 1_000;

export interface WorkerOptions {
  deliveries: DeliveryStore;
  directory: DeliveryDirectory;
  http: OutboundHttp;
  bus: Bus;
  eventLog: EventLog;
  log: Logger;
  backoffBaseMs: number;
  maxAttempts: number;
  /** Posts an audit event to the tenant's feed. */
  audit: (tenantId: string, message: string) => Promise<void>;
}

/** The wait after failed try n (1-based): 3^n × base, ±10 % so retries of many deliveries spread out. */
export function backoffMs(attempt: number, baseMs: number, random = Math.random()): number {
  return Math.round(3 ** attempt * baseMs * (0.9 + 0.2 * random));
}

/**
 * Sends due deliveries through their channel's adapter and records each try
 * (design.md §5): delivered, pending again after the backoff, or failed after
 * the last try. Every status change is streamed as a `delivery` frame.
 */
export function createDeliveryWorker(options: WorkerOptions) {
  const { deliveries, directory, log } = options;
  let wanted = false;
  let running: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  async function attempt(row: DeliveryRow): Promise<void> {
    const channel = await directory.channel(row.channel_id).catch(() => undefined);
    const type = channel?.type ?? "unknown";
    let updated: DeliveryRow | undefined;
    try {
      if (!channel) throw new DeliveryError("the channel no longer exists", true);
      if (!channel.active || !channel.tenantActive) throw new DeliveryError("the channel is inactive");
      const adapter = adapterOf(channel.type);
      if (!adapter) throw new DeliveryError(`no adapter for channel type ${channel.type}`, true);
      const result = await adapter.deliver({
        deliveryId: row.id,
        activity: row.activity as OutboundActivity,
        channel,
        externalId: row.external_id ?? undefined,
        http: options.http,
      });
      for (const [i, reply] of (result.replies ?? []).entries()) {
        await directory.client
          .postChannelActivity(
            {
              channelId: channel.id,
              conversationId: row.conversation_id,
              messageId: `reply:${row.id}:${i}`,
              from: { id: "bot", name: channel.type },
              type: ActivityType.MESSAGE,
              text: reply.text,
            },
            { headers: directory.headers },
          )
          .catch((error) => {
            const code = ConnectError.from(error).code;
            // A closed conversation or a gone channel will not take the reply on a later try either.
            throw code === Code.FailedPrecondition || code === Code.NotFound
              ? new DeliveryError(`reply refused: ${ConnectError.from(error).rawMessage}`, true)
              : error;
          });
      }
      updated = await deliveries.markDelivered(row.id, result.providerMessageId);
      deliveriesTotal.inc({ channel_type: type, outcome: "delivered" });
    } catch (error) {
      updated = await failedTry(row, type, error);
    }
    if (updated) {
      options.bus.publish(conversationTopic(row.conversation_id), {
        type: "delivery",
        conversation_id: row.conversation_id,
        delivery: toApiJson(DeliverySchema, deliveryMessage(updated)),
      });
    }
  }

  async function failedTry(row: DeliveryRow, type: string, error: unknown): Promise<DeliveryRow | undefined> {
    const message = error instanceof Error ? error.message : String(error);
    const attempts = row.attempts + 1;
    const final = (error instanceof DeliveryError && error.permanent) || attempts >= options.maxAttempts;
    const updated = await deliveries.markTryFailed(row.id, message, final, backoffMs(attempts, options.backoffBaseMs));
    deliveriesTotal.inc({ channel_type: type, outcome: final ? "failed" : "retry" });
    if (!final || !updated) return updated;
    log.warn({ deliveryId: row.id, channelId: row.channel_id, attempts, error: message }, "delivery failed");
    await options
      .audit(
        row.tenant_id,
        `delivery ${row.id} of activity ${row.activity_id} to channel ${row.channel_id} failed after ${attempts} tries: ${message}`.slice(
          0,
          500,
        ),
      )
      .catch((e) => log.error({ err: e, deliveryId: row.id }, "audit event for a failed delivery not written"));
    if (options.eventLog.kind === "kafka") {
      await options.eventLog
        .append([
          {
            eventId: row.id,
            topic: DELIVERIES_DLQ_TOPIC,
            key: row.conversation_id,
            tenantId: row.tenant_id,
            payload: toApiJson(DeliverySchema, deliveryMessage(updated)),
          },
        ])
        .catch((e) => log.error({ err: e, deliveryId: row.id }, "failed delivery not copied to its DLQ topic"));
    }
    return updated;
  }

  async function pass(): Promise<number> {
    const rows = await deliveries.claimDue(BATCH);
    await Promise.all(
      rows.map((row) => attempt(row).catch((error) => log.error({ err: error, deliveryId: row.id }, "delivery try"))),
    );
    return rows.length;
  }

  async function loop(): Promise<void> {
    while (wanted && !stopped) {
      wanted = false;
      try {
        // A full batch, or any batch at all (it may have unblocked the next of its lines): look again.
        if ((await pass()) > 0) wanted = true;
      } catch (error) {
        log.error({ err: error }, "delivery pass failed");
      }
    }
    running = undefined;
    if (!stopped) await scheduleNext();
  }

  async function scheduleNext(): Promise<void> {
    clearTimeout(timer);
    const due = await deliveries.nextDueAt().catch(() => undefined);
    const wait = due ? Math.max(0, Math.min(MAX_IDLE_MS, due.getTime() - Date.now())) : MAX_IDLE_MS;
    timer = setTimeout(worker.wake, wait);
    timer.unref();
  }

  const worker = {
    /** Asks for a pass now (new deliveries queued, one retried). */
    wake(): void {
      if (stopped) return;
      wanted = true;
      running ??= loop();
    },
    async stop(): Promise<void> {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
  return worker;
}

export type DeliveryWorker = ReturnType<typeof createDeliveryWorker>;
