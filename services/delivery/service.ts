import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { DeliveryService } from "../../gen/converger/v1/delivery_pb.js";
import { EventsService } from "../../gen/converger/v1/events_pb.js";
import { createOutboundHttp } from "../channel-adapters/index.js";
import { createAccessInterceptor } from "../common/access/access.js";
import { type Consumer, joinUntilDone } from "../common/events/event-log.js";
import { forService } from "../common/obs/logger.js";
import { createErrorInterceptor } from "../common/rpc/log-interceptor.js";
import { type MigrationSet, type ModuleDeps, requirePool, type ServiceModule } from "../common/service.js";
import { ACTIVITIES_TOPIC, createActivityConsumer, DELIVERY_CONSUMER } from "./consumer.js";
import { createDeliveryDirectory } from "./directory.js";
import { deliveryImpl } from "./handlers.js";
import { deliveryOpsImpl } from "./handlers-ops.js";
import { processingDeadLettersTotal, sampleCircuits } from "./metrics.js";
import { createAttemptStore } from "./store/attempts.js";
import { circuitPolicy, createCircuitStore } from "./store/circuits.js";
import { createDeliveryStore } from "./store/deliveries.js";
import { createEventStore } from "./store/events.js";
import { createStatsStore } from "./store/stats.js";
import { createDeliveryWorker } from "./worker.js";

export const deliveryMigrations: MigrationSet = {
  owner: "delivery",
  dir: fileURLToPath(new URL("./migrations", import.meta.url)),
};

const PROCESSING_DLQ_TOPIC = "converger.processing.dlq";
const PRUNE_EVERY_MS = 60 * 60 * 1000;
// Processed event ids are kept well past any redelivery the log could still make.
const PROCESSED_EVENTS_RETENTION_HOURS = 7 * 24;

/**
 * The delivery service (design.md §3 Delivery and inbound, §5): consumes the
 * activity log into tracked deliveries, sends them through the channel
 * adapters with retries, and takes providers' inbound webhooks.
 */
export function createDeliveryModule(deps: ModuleDeps): ServiceModule {
  const { config, bus, eventLog } = deps;
  const pool = requirePool(deps);
  const log = forService(deps.log, "delivery");
  const deliveries = createDeliveryStore(pool, circuitPolicy(config.deliveryCircuitCooldownMs));
  const circuits = createCircuitStore(pool);
  const events = createEventStore(pool);
  const directory = createDeliveryDirectory(deps.transportFor("conversations"), config.internalToken, bus);
  const feed = createClient(EventsService, deps.transportFor("conversations"));
  const worker = createDeliveryWorker({
    deliveries,
    circuits,
    limiters: deps.limiters,
    directory,
    http: createOutboundHttp({ allowPrivate: config.webhookAllowPrivate }),
    bus,
    eventLog,
    log,
    backoffBaseMs: config.deliveryBackoffBaseMs,
    maxAttempts: config.deliveryMaxAttempts,
    async audit(tenantId, message) {
      await feed.createEvent({ tenantId, message }, { headers: directory.headers });
    },
  });
  // At 0 from the start: an alert on its increase needs the series before the first dead letter.
  processingDeadLettersTotal.inc({ consumer: DELIVERY_CONSUMER, topic: ACTIVITIES_TOPIC }, 0);
  const consumer: Consumer = {
    group: DELIVERY_CONSUMER,
    topic: ACTIVITIES_TOPIC,
    ...createActivityConsumer({ pool, deliveries, events, directory, onQueued: worker.wake }),
    async deadLetter(record, error, attempts) {
      const message = error instanceof Error ? error.message : String(error);
      await events.deadLetter(DELIVERY_CONSUMER, record, message, attempts);
      processingDeadLettersTotal.inc({ consumer: DELIVERY_CONSUMER, topic: record.topic });
      log.error({ eventId: record.eventId, topic: record.topic, error: message }, "event dead-lettered");
      if (eventLog.kind === "kafka") {
        await eventLog.append([{ ...record, topic: PROCESSING_DLQ_TOPIC }]).catch((e) => {
          log.error({ err: e, eventId: record.eventId }, "dead letter not copied to its topic; it is in the table");
        });
      }
    },
  };
  // Registered now, before any module starts: the in-process relay starts with the conversations module.
  // An unreachable Kafka does not stop the process: joining is retried until it works.
  let stopped = false;
  void joinUntilDone(eventLog, consumer, log, () => stopped);
  const interceptors = [createErrorInterceptor(log), createAccessInterceptor(deps.access)];
  let pruneTimer: NodeJS.Timeout | undefined;
  let stopSampling = () => {};

  return {
    name: "delivery",
    services: [DeliveryService],
    routes(router) {
      router.service(
        DeliveryService,
        {
          ...deliveryImpl({
            deliveries,
            circuits,
            events,
            directory,
            bus,
            consumers: new Map([[DELIVERY_CONSUMER, consumer]]),
            wakeWorker: worker.wake,
            rateLimits: deps.access.rateLimits,
          }),
          ...deliveryOpsImpl({
            deliveries,
            attempts: createAttemptStore(pool),
            stats: createStatsStore(pool),
            bus,
            wakeWorker: worker.wake,
          }),
        },
        { interceptors },
      );
    },
    async start() {
      worker.wake();
      const prune = async () => {
        await deliveries.prune(config.deliveryRetentionDays);
        await events.pruneProcessed(PROCESSED_EVENTS_RETENTION_HOURS);
      };
      pruneTimer = setInterval(() => void prune().catch((e) => log.warn({ err: e }, "prune failed")), PRUNE_EVERY_MS);
      pruneTimer.unref();
      stopSampling = sampleCircuits(pool, log);
    },
    async ready() {
      await pool.query("SELECT 1");
      await eventLog.ready();
    },
    async stop() {
      stopped = true;
      clearInterval(pruneTimer);
      stopSampling();
      await worker.stop();
    },
  };
}
