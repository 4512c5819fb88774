import { randomUUID } from "node:crypto";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { DeliveryService, DeliveryStatus } from "../../gen/converger/v1/delivery_pb.js";
import type { Principal } from "../common/access/context.js";
import { createPrincipalTransports } from "../common/access/principal-transport.js";
import { type BusFrame, conversationTopic, createLocalBus } from "../common/events/bus.js";
import { deliveryOpsImpl } from "./handlers-ops.js";
import type { AttemptStore } from "./store/attempts.js";
import type { DeliveryRow, DeliveryStore } from "./store/deliveries.js";
import type { RetryFilter } from "./store/retries.js";
import type { DeliveryStatsStore } from "./store/stats.js";

const TENANT = randomUUID();
const CONVERSATION = randomUUID();

function failed(): DeliveryRow {
  const now = new Date();
  return {
    id: randomUUID(),
    tenant_id: TENANT,
    activity_id: randomUUID(),
    conversation_id: CONVERSATION,
    seq: "1",
    channel_id: randomUUID(),
    external_id: null,
    activity: {},
    status: "pending",
    attempts: 0,
    last_error: "HTTP 500",
    next_attempt_at: now,
    delivered_at: null,
    provider_message_id: null,
    created_at: now,
    updated_at: now,
    sort_key: now.toISOString(),
  };
}

function setup() {
  const asked: { tenantId: string; filter: RetryFilter; max: number; dry: boolean }[] = [];
  const rows = [failed(), failed()];
  const deliveries: Partial<DeliveryStore> = {
    async countMatching(tenantId, filter, max) {
      asked.push({ tenantId, filter, max, dry: true });
      return { count: rows.length, hasMore: false };
    },
    async retryMatching(tenantId, filter, max) {
      asked.push({ tenantId, filter, max, dry: false });
      return { retried: rows, hasMore: true };
    },
  };
  const bus = createLocalBus((error) => {
    throw error;
  });
  const frames: BusFrame[] = [];
  bus.subscribe(conversationTopic(CONVERSATION), (frame) => frames.push(frame));
  let wakes = 0;
  const impl = deliveryOpsImpl({
    deliveries: deliveries as DeliveryStore,
    attempts: { timeline: async () => undefined } as AttemptStore,
    stats: {} as DeliveryStatsStore,
    bus,
    wakeWorker: () => wakes++,
  });
  const as = createPrincipalTransports((router) => router.service(DeliveryService, impl));
  const client = (p: Principal = { kind: "api_key", tenantId: TENANT }) => createClient(DeliveryService, as(p));
  return { asked, frames, client, wakes: () => wakes };
}

describe("RetryDeliveries", () => {
  it("counts in a dry run without streaming or waking anything, failed deliveries by default, up to 10000", async () => {
    const s = setup();
    expect(await s.client().retryDeliveries({ dryRun: true })).toMatchObject({ count: 2, hasMore: false });
    expect(s.asked).toEqual([{ tenantId: TENANT, filter: { status: "failed" }, max: 10_000, dry: true }]);
    expect(s.frames).toEqual([]);
    expect(s.wakes()).toBe(0);
  });

  it("streams a delivery frame per retried delivery and wakes the worker once", async () => {
    const s = setup();
    const channelId = randomUUID();
    const res = await s.client().retryDeliveries({ status: DeliveryStatus.PENDING, channelId, max: 2 });
    expect(res).toMatchObject({ count: 2, hasMore: true });
    expect(s.asked).toEqual([{ tenantId: TENANT, filter: { status: "pending", channelId }, max: 2, dry: false }]);
    expect(s.frames).toMatchObject([
      { type: "delivery", delivery: { status: "pending" } },
      { type: "delivery", delivery: { status: "pending" } },
    ]);
    expect(s.wakes()).toBe(1);
  });

  it("refuses delivered as a filter, and callers without a tenant", async () => {
    const s = setup();
    const codeOf = (call: Promise<unknown>) =>
      call.then(
        () => undefined,
        (e: unknown) => ConnectError.from(e).code,
      );
    expect(await codeOf(s.client().retryDeliveries({ status: DeliveryStatus.DELIVERED }))).toBe(Code.InvalidArgument);
    expect(await codeOf(s.client({ kind: "operator" }).retryDeliveries({}))).toBe(Code.PermissionDenied);
    expect(await codeOf(s.client().listDeliveryAttempts({ deliveryId: randomUUID() }))).toBe(Code.NotFound);
    expect(s.asked).toEqual([]);
  });
});
