import { Code, ConnectError } from "@connectrpc/connect";
import { RateLimiterRes } from "rate-limiter-flexible";
import { ActivityType } from "../../gen/converger/v1/conversations_pb.js";
import { DeliverySchema } from "../../gen/converger/v1/delivery_pb.js";
import type { OutboundHttp } from "../channel-adapters/index.js";
import { adapterOf, DeliveryError, type OutboundActivity } from "../channel-adapters/index.js";
import type { LimiterStore } from "../common/access/limiter-store.js";
import type { Bus } from "../common/events/bus.js";
import type { EventLog } from "../common/events/event-log.js";
import type { Logger } from "../common/obs/logger.js";
import { toApiJson } from "../common/rpc/json.js";
import type { ChannelInfo, DeliveryDirectory } from "./directory.js";
import {
  circuitTransitionsTotal,
  deliveriesTotal,
  deliveryLatency,
  observeTry,
  secondsSinceStored,
} from "./metrics.js";
import { deliveryMessage, publishDelivery } from "./rows.js";
import { withoutChannelSecrets } from "./secret-echo.js";
import type { TryTiming } from "./store/attempts.js";
import type { CircuitStore } from "./store/circuits.js";
import type { DeliveryRow, DeliveryStore } from "./store/deliveries.js";
import { startTry } from "./try-timing.js";

const DELIVERIES_DLQ_TOPIC = "converger.deliveries.dlq";
// Lines (conversation, channel) worked at once, each one delivery at a time, in seq order.
const MAX_LINES = 256;
// Deliveries one line sends before it goes back to the queue, so busy lines cannot starve others.
const MAX_PER_LINE_RUN = 1_000;
// Rows written or rescheduled by other processes are found within this long.
const MAX_IDLE_MS = 1_000;
// An empty pass is not repeated sooner than this (new rows wake the worker anyway).
const MIN_IDLE_MS = 20;
// Pacing counters (config.rate_limit_per_second), keyed by channel id, shared like every rate limit.
const PACING_LIMITER = "delivery-pacing";
// Open circuits a worker remembers before it forgets the ended ones.
const MAX_REMEMBERED_CIRCUITS = 10_000;
// A paced-out delivery is not tried again sooner than this.
const MIN_PACING_WAIT_MS = 10;

export interface WorkerOptions {
  deliveries: DeliveryStore;
  circuits: CircuitStore;
  directory: DeliveryDirectory;
  /** Pacing per channel, shared by every worker through Redis when REDIS_URL is set. */
  limiters: LimiterStore;
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
function backoffMs(attempt: number, baseMs: number, random = Math.random()): number {
  return Math.round(3 ** attempt * baseMs * (0.9 + 0.2 * random));
}

type TryOutcome =
  | { sent: true; providerMessageId?: string | undefined; type: string; timing: TryTiming }
  | { sent: false; row?: DeliveryRow | undefined };

const lineOf = (row: DeliveryRow) => `${row.conversation_id}/${row.channel_id}`;

/**
 * Sends due deliveries through their channel's adapter (design.md §5). Each
 * (conversation, channel) line is worked by one runner at a time, in seq
 * order: delivered → the next of the line; failed try → pending again after
 * the backoff (the line waits); last try failed → `failed`, and the line goes
 * on. Successes of all lines are recorded together, one statement that also
 * claims each line's next delivery. Every status change is streamed as a
 * `delivery` frame.
 */
export function createDeliveryWorker(options: WorkerOptions) {
  const { deliveries, directory, log } = options;
  let wanted = false;
  let running: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const lines = new Set<Promise<void>>();
  const steps = createStepBatcher(options);
  // Circuits this process saw open, until when: tries its lines claimed just before are not sent.
  const openUntil = new Map<string, number>();

  /** How long a try on `channel` must wait for its pacing, or undefined to go now. */
  async function pacingWait(channel: ChannelInfo): Promise<number | undefined> {
    const rate = channel.config.rate_limit_per_second;
    if (typeof rate !== "number" || rate <= 0) return undefined;
    try {
      await options.limiters.limiter(PACING_LIMITER, rate, 1).consume(channel.id);
      return undefined;
    } catch (error) {
      if (error instanceof RateLimiterRes) return Math.max(MIN_PACING_WAIT_MS, error.msBeforeNext);
      // Counters that cannot answer do not hold deliveries back.
      log.warn({ err: error, channelId: channel.id }, "delivery pacing unavailable; sending unpaced");
      return undefined;
    }
  }

  async function attempt(row: DeliveryRow): Promise<TryOutcome> {
    let channel: ChannelInfo | undefined;
    // Only failures of the send itself say something about the channel's endpoint (its circuit).
    let sending = false;
    const timer = startTry(options.http);
    try {
      // A directory that cannot answer now is a failed try like any other; only "no such channel" is final.
      channel = await directory.channel(row.channel_id).catch((error: unknown) => {
        throw new DeliveryError(`channel lookup failed: ${(error as Error).message}`);
      });
      if (!channel) throw new DeliveryError("the channel no longer exists", true);
      if (!channel.active || !channel.tenantActive) throw new DeliveryError("the channel is inactive");
      const adapter = adapterOf(channel.type);
      if (!adapter) throw new DeliveryError(`no adapter for channel type ${channel.type}`, true);
      const open = (openUntil.get(channel.id) ?? 0) - Date.now();
      if (open > 0) return { sent: false, row: await deliveries.defer(row.id, open) };
      const wait = await pacingWait(channel);
      // Paced out: no try was made, so none is counted.
      if (wait !== undefined) return { sent: false, row: await deliveries.defer(row.id, wait) };
      sending = true;
      const result = await adapter.deliver({
        deliveryId: row.id,
        activity: row.activity as OutboundActivity,
        channel,
        ...(row.external_id === null ? {} : { externalId: row.external_id }),
        http: timer.http,
      });
      sending = false;
      for (const [i, reply] of (result.replies ?? []).entries()) await postReply(row, channel, i, reply.text);
      const timing = observeTry(channel.type, timer.finish());
      return { sent: true, providerMessageId: result.providerMessageId, type: channel.type, timing };
    } catch (error) {
      const failure = withoutChannelSecrets(error, channel);
      const type = channel?.type ?? "unknown";
      const timing = observeTry(type, timer.finish());
      return { sent: false, row: await failedTry(row, type, failure, sending, timing) };
    }
  }

  /** A reply of the channel (echo) in the same conversation; keyed by delivery, so a re-run adds none. */
  async function postReply(row: DeliveryRow, channel: ChannelInfo, index: number, text: string) {
    const request = {
      channelId: channel.id,
      conversationId: row.conversation_id,
      messageId: `reply:${row.id}:${index}`,
      from: { id: "bot", name: channel.type },
      type: ActivityType.MESSAGE,
      text,
    };
    await directory.client.postChannelActivity(request, { headers: directory.headers }).catch((error) => {
      const cause = ConnectError.from(error);
      // A closed conversation or a gone channel will not take the reply on a later try either.
      const final = cause.code === Code.FailedPrecondition || cause.code === Code.NotFound;
      throw final ? new DeliveryError(`reply refused: ${cause.rawMessage}`, true) : error;
    });
  }

  async function failedTry(
    row: DeliveryRow,
    type: string,
    error: unknown,
    sending: boolean,
    timing: TryTiming,
  ): Promise<DeliveryRow | undefined> {
    const message = error instanceof Error ? error.message : String(error);
    const attempts = row.attempts + 1;
    const permanent = error instanceof DeliveryError && error.permanent;
    const final = permanent || attempts >= options.maxAttempts;
    const updated = await deliveries.markTryFailed(row.id, {
      error: message,
      final,
      retryInMs: backoffMs(attempts, options.backoffBaseMs),
      // A provider rejecting one message is an endpoint that answers.
      countsForCircuit: sending && !permanent,
      timing,
    });
    deliveriesTotal.inc({ channel_type: type, outcome: final ? "failed" : "retry" });
    noteCircuit(row, updated?.circuit_open_until ?? null);
    if (updated) publishDelivery(options.bus, updated);
    if (!final || !updated) return updated;
    log.warn({ deliveryId: row.id, channelId: row.channel_id, attempts, error: message }, "delivery failed");
    const audit = `delivery ${row.id} of activity ${row.activity_id} to channel ${row.channel_id} failed after ${attempts} tries: ${message}`;
    await options
      .audit(row.tenant_id, audit.slice(0, 500))
      .catch((e) => log.error({ err: e, deliveryId: row.id }, "audit event for a failed delivery not written"));
    if (options.eventLog.kind === "kafka") {
      const payload = toApiJson(DeliverySchema, deliveryMessage(updated));
      await options.eventLog
        .append([
          { eventId: row.id, topic: DELIVERIES_DLQ_TOPIC, key: row.conversation_id, tenantId: row.tenant_id, payload },
        ])
        .catch((e) => log.error({ err: e, deliveryId: row.id }, "failed delivery not copied to its DLQ topic"));
    }
    return updated;
  }

  function noteCircuit(row: DeliveryRow, until: Date | null) {
    if (!until) return;
    if (openUntil.get(row.channel_id) !== until.getTime()) {
      circuitTransitionsTotal.inc({ to: "open" });
      log.warn({ channelId: row.channel_id, until }, "channel circuit open: no tries until its cool-down ends");
    }
    openUntil.set(row.channel_id, until.getTime());
    if (openUntil.size > MAX_REMEMBERED_CIRCUITS) {
      for (const [id, at] of openUntil) if (at < Date.now()) openUntil.delete(id);
    }
  }

  /** Works one line from its claimed head until it is empty, waits for a retry, or had its share. */
  async function runLine(head: DeliveryRow): Promise<void> {
    let row: DeliveryRow | undefined = head;
    for (let sent = 0; row; sent++) {
      if (stopped || sent >= MAX_PER_LINE_RUN) return deliveries.release(row.id);
      const outcome = await attempt(row);
      if (outcome.sent) {
        // A delivered try closes the circuit.
        if (openUntil.delete(row.channel_id)) circuitTransitionsTotal.inc({ to: "closed" });
        row = await steps.complete(row, outcome.type, outcome.timing, outcome.providerMessageId);
      } else if (outcome.row?.status === "failed") {
        row = await deliveries.claimNextInLine(row.conversation_id, row.channel_id, row.id);
      } else return;
    }
  }

  /** Claims heads of idle lines up to the concurrency limit and starts working them. */
  async function pass(): Promise<number> {
    const room = MAX_LINES - lines.size;
    if (room <= 0) return 0;
    // Half-open circuits' probes first: they are the only tries their channels get.
    const probes = await options.circuits.claimProbes(room);
    // Known as open (whoever opened it), due now: the probe's outcome is a transition either way.
    for (const probe of probes) if (!openUntil.has(probe.channel_id)) openUntil.set(probe.channel_id, 0);
    const heads = [...probes, ...(await deliveries.claimDue(room - probes.length))];
    for (const head of heads) {
      const line = runLine(head)
        .catch((error) => log.error({ err: error, deliveryId: head.id }, "delivery line stopped"))
        .finally(() => {
          lines.delete(line);
          worker.wake(); // another line may be due now
        });
      lines.add(line);
    }
    return heads.length;
  }

  async function loop(): Promise<void> {
    while (wanted && !stopped) {
      wanted = false;
      try {
        if ((await pass()) > 0 && lines.size < MAX_LINES) wanted = true;
      } catch (error) {
        log.error({ err: error }, "delivery pass failed");
      }
    }
    running = undefined;
    if (!stopped) await scheduleNext();
  }

  async function scheduleNext(): Promise<void> {
    clearTimeout(timer);
    // Saturated: finishing lines wake the worker. Otherwise the next head falls due, at least MIN_IDLE_MS on.
    const due = lines.size < MAX_LINES ? await deliveries.nextDueAt().catch(() => undefined) : undefined;
    const wait = due ? Math.max(MIN_IDLE_MS, Math.min(MAX_IDLE_MS, due.getTime() - Date.now())) : MAX_IDLE_MS;
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
      await Promise.all(lines);
    },
  };
  return worker;
}

/**
 * Records delivered rows of many lines in one statement per round (one at a
 * time, so they batch up while it runs) and hands each line its next claimed
 * delivery.
 */
function createStepBatcher(options: WorkerOptions) {
  interface Step {
    row: DeliveryRow;
    type: string;
    timing: TryTiming;
    providerMessageId?: string | undefined;
    resolve: (next: DeliveryRow | undefined) => void;
    reject: (error: unknown) => void;
  }
  let queue: Step[] = [];
  let flushing = false;

  async function flush(): Promise<void> {
    flushing = true;
    while (queue.length > 0) {
      const batch = queue;
      queue = [];
      try {
        const { done, next } = await options.deliveries.completeAndClaimNext(
          batch.map(({ row, timing, providerMessageId }) =>
            providerMessageId === undefined ? { id: row.id, timing } : { id: row.id, timing, providerMessageId },
          ),
        );
        const types = new Map(batch.map((s) => [s.row.id, s.type]));
        for (const row of done) {
          const channelType = types.get(row.id) ?? "unknown";
          deliveriesTotal.inc({ channel_type: channelType, outcome: "delivered" });
          deliveryLatency.observe({ channel_type: channelType }, secondsSinceStored(row));
          publishDelivery(options.bus, row);
        }
        // Each claimed row goes to one runner of its line, never to two.
        const nextOf = new Map(next.map((row) => [lineOf(row), row]));
        for (const step of batch) {
          const line = lineOf(step.row);
          step.resolve(nextOf.get(line));
          nextOf.delete(line);
        }
      } catch (error) {
        for (const step of batch) step.reject(error);
      }
    }
    flushing = false;
  }

  return {
    /** Records `row` delivered; resolves with the next delivery of its line, claimed, if one is due. */
    complete(
      row: DeliveryRow,
      type: string,
      timing: TryTiming,
      providerMessageId?: string,
    ): Promise<DeliveryRow | undefined> {
      return new Promise((resolve, reject) => {
        queue.push({ row, type, timing, providerMessageId, resolve, reject });
        if (!flushing) setImmediate(() => void (flushing || flush()));
      });
    },
  };
}
