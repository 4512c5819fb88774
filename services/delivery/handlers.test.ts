import { randomUUID } from "node:crypto";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ChannelHealth } from "../../gen/converger/v1/channels_pb.js";
import { ActivityType, DirectoryService } from "../../gen/converger/v1/conversations_pb.js";
import { DeliveryService, DeliveryStatus } from "../../gen/converger/v1/delivery_pb.js";
import { hubSignature } from "../channel-adapters/signature.js";
import { CLIENT_IP_HEADER, type Principal } from "../common/access/context.js";
import { createMemoryLimiterStore } from "../common/access/limiter-store.js";
import { createPrincipalTransports } from "../common/access/principal-transport.js";
import { createRateLimits } from "../common/access/rate-limits.js";
import { type BusFrame, conversationTopic, createLocalBus } from "../common/events/bus.js";
import { createLogger } from "../common/obs/logger.js";
import { createDeliveryDirectory } from "./directory.js";
import { deliveryImpl } from "./handlers.js";
import type { CircuitStore } from "./store/circuits.js";
import type { DeliveryRow, DeliveryStore } from "./store/deliveries.js";
import type { ConsumerEventStore } from "./store/events.js";

const TENANT = randomUUID();
const OTHER = randomUUID();
const WEBHOOK = { id: randomUUID(), secret: "cvs_webhook-secret", active: true };
const META = { id: randomUUID(), secret: "cvs_meta" };
const key = (tenantId = TENANT): Principal => ({ kind: "api_key", tenantId });

function delivery(status: DeliveryRow["status"], tenantId = TENANT): DeliveryRow {
  const now = new Date();
  return {
    id: randomUUID(),
    tenant_id: tenantId,
    activity_id: randomUUID(),
    conversation_id: randomUUID(),
    seq: "1",
    channel_id: WEBHOOK.id,
    external_id: null,
    activity: {},
    status,
    attempts: status === "failed" ? 5 : 1,
    last_error: status === "failed" ? "HTTP 500" : null,
    next_attempt_at: null,
    delivered_at: null,
    provider_message_id: null,
    created_at: now,
    updated_at: now,
    sort_key: now.toISOString(),
  };
}

function setup() {
  const rows = [delivery("failed"), delivery("delivered"), delivery("pending"), delivery("failed", OTHER)];
  const posted: { channelId: string; externalId: string; messageId: string; text: string }[] = [];
  const owned = (tenantId: string, id: string) => rows.find((r) => r.id === id && r.tenant_id === tenantId);
  const deliveries: Partial<DeliveryStore> = {
    list: async (tenantId, filter) =>
      rows.filter((r) => r.tenant_id === tenantId && (!filter.status || r.status === filter.status)),
    listForActivity: async (tenantId, activityId) =>
      rows.filter((r) => r.tenant_id === tenantId && r.activity_id === activityId),
    get: async (tenantId, id) => owned(tenantId, id),
    async retry(tenantId, id) {
      const row = owned(tenantId, id);
      if (!row || row.status === "delivered") return undefined;
      Object.assign(row, { status: "pending", attempts: 0 });
      return row;
    },
  };
  // The conversations service's DirectoryService: channel records and the inbound write.
  const seen = new Set<string>();
  const conversations = createRouterTransport((router) =>
    router.service(DirectoryService, {
      getChannelRecord: ({ channelId }) => {
        if (channelId === WEBHOOK.id) {
          const { id, secret, active } = WEBHOOK;
          return {
            found: true,
            id,
            tenantId: TENANT,
            type: "webhook",
            channelActive: active,
            tenantActive: true,
            secret,
            config: { url: "https://h.example" },
          };
        }
        if (channelId === META.id) {
          const config = { phone_number_id: "1", access_token: "t", verify_token: "vt", app_secret: "as" };
          return {
            found: true,
            id: META.id,
            tenantId: TENANT,
            type: "whatsapp_meta",
            channelActive: true,
            tenantActive: true,
            secret: META.secret,
            config,
          };
        }
        return { found: false };
      },
      getActivityOwner: ({ activityId }) =>
        rows.some((r) => r.activity_id === activityId) ? { found: true, tenantId: TENANT } : { found: false },
      postChannelActivity: (req) => {
        posted.push({ channelId: req.channelId, externalId: req.externalId, messageId: req.messageId, text: req.text });
        const replayed = seen.has(req.messageId);
        seen.add(req.messageId);
        return { activity: { id: randomUUID(), type: ActivityType.MESSAGE, text: req.text }, replayed };
      },
    }),
  );
  const bus = createLocalBus((error) => {
    throw error;
  });
  const log = createLogger("silent");
  let wakes = 0;
  const circuits: Partial<CircuitStore> = {
    health: async (_tenantId, ids) => new Map(ids.map((id) => [id, ChannelHealth.DOWN])),
  };
  const events: Partial<ConsumerEventStore> = { getDeadLetter: async () => undefined };
  const impl = deliveryImpl({
    directory: createDeliveryDirectory(conversations, "internal-token", bus),
    deliveries: deliveries as DeliveryStore,
    circuits: circuits as CircuitStore,
    events: events as ConsumerEventStore,
    bus,
    rateLimits: createRateLimits(
      createMemoryLimiterStore(),
      { perCredential: 9, perTenant: 9, perIp: 9, authFailures: 2 },
      log,
    ),
    consumers: new Map(),
    wakeWorker: () => wakes++,
  });
  const as = createPrincipalTransports((router) => router.service(DeliveryService, impl));
  return {
    rows,
    posted,
    bus,
    wakes: () => wakes,
    client: (p: Principal = key()) => createClient(DeliveryService, as(p)),
  };
}

async function codeOf(call: Promise<unknown>): Promise<Code> {
  const error = await call.then(
    () => undefined,
    (e: unknown) => ConnectError.from(e),
  );
  if (!error) throw new Error("the call succeeded");
  return error.code;
}

const inbound = (messageId: string) =>
  Buffer.from(JSON.stringify({ external_id: "ext-1", message_id: messageId, from: { id: "u1" }, text: "hello" }));
const signed = (body: Buffer, secret = WEBHOOK.secret) => ({ "x-hub-signature-256": hubSignature(body, secret) });

describe("DeliveryService handlers", () => {
  it("lists the tenant's deliveries, filtered by status", async () => {
    const s = setup();
    const failed = await s.client().listDeliveries({ status: DeliveryStatus.FAILED });
    expect(failed.deliveries.map((d) => [d.id, d.attempts, d.lastError])).toEqual([[s.rows[0]?.id, 5, "HTTP 500"]]);
    expect((await s.client().listDeliveries({})).deliveries).toHaveLength(3);
  });

  it("retries a failed delivery with a fresh budget, streams it and wakes the worker", async () => {
    const s = setup();
    const row = s.rows[0] as DeliveryRow;
    const live: BusFrame[] = [];
    s.bus.subscribe(conversationTopic(row.conversation_id), (frame) => live.push(frame));
    const retried = await s.client().retryDelivery({ id: row.id });
    expect(retried).toMatchObject({ id: row.id, status: DeliveryStatus.PENDING, attempts: 0 });
    expect(live).toMatchObject([{ type: "delivery", delivery: { id: row.id, status: "pending", attempts: 0 } }]);
    expect(s.wakes()).toBe(1);
  });

  it("refuses to retry a delivered one, and answers another tenant's as not found", async () => {
    const s = setup();
    expect(await codeOf(s.client().retryDelivery({ id: s.rows[1]?.id as string }))).toBe(Code.FailedPrecondition);
    expect(await codeOf(s.client().retryDelivery({ id: s.rows[3]?.id as string }))).toBe(Code.NotFound);
    expect(await codeOf(s.client(key(OTHER)).retryDelivery({ id: s.rows[0]?.id as string }))).toBe(Code.NotFound);
    expect(s.wakes()).toBe(0);
  });

  it("lists an activity's deliveries, and hides another tenant's activity", async () => {
    const s = setup();
    const activityId = s.rows[2]?.activity_id as string;
    expect((await s.client().listActivityDeliveries({ activityId })).deliveries.map((d) => d.status)).toEqual([
      DeliveryStatus.PENDING,
    ]);
    expect(await codeOf(s.client(key(OTHER)).listActivityDeliveries({ activityId }))).toBe(Code.NotFound);
    expect(await codeOf(s.client().listActivityDeliveries({ activityId: randomUUID() }))).toBe(Code.NotFound);
  });

  it("answers channel health per channel and refuses ids that are not UUIDs", async () => {
    const s = setup();
    const internal = s.client({ kind: "internal" });
    const health = await internal.getChannelHealth({ tenantId: TENANT, channelIds: [WEBHOOK.id] });
    expect(health.channels.map((c) => [c.channelId, c.health])).toEqual([[WEBHOOK.id, ChannelHealth.DOWN]]);
    expect(await codeOf(internal.getChannelHealth({ tenantId: TENANT, channelIds: ["x"] }))).toBe(Code.InvalidArgument);
  });

  it("stores a signed inbound message once per message id", async () => {
    const s = setup();
    const body = inbound("m-1");
    const first = await s
      .client({ kind: "public" })
      .receiveInbound({ channelId: WEBHOOK.id, body, headers: signed(body) });
    expect(first).toMatchObject({ duplicates: 0, statuses: 0 });
    expect(first.activityIds).toHaveLength(1);
    const again = await s
      .client({ kind: "public" })
      .receiveInbound({ channelId: WEBHOOK.id, body, headers: signed(body) });
    expect(again.duplicates).toBe(1);
    expect(s.posted).toEqual(
      Array(2).fill({ channelId: WEBHOOK.id, externalId: "ext-1", messageId: "m-1", text: "hello" }),
    );
  });

  it("refuses a bad signature and stores nothing; repeated, the sender is locked out of that channel", async () => {
    const s = setup();
    const anyone = s.client({ kind: "public" });
    const body = inbound("m-2");
    const headers = signed(body, "wrong");
    const call = () =>
      anyone.receiveInbound(
        { channelId: WEBHOOK.id, body, headers },
        { headers: { [CLIENT_IP_HEADER]: "203.0.113.9" } },
      );
    expect(await codeOf(call())).toBe(Code.Unauthenticated);
    expect(await codeOf(call())).toBe(Code.Unauthenticated);
    expect(await codeOf(call())).toBe(Code.ResourceExhausted);
    const unreadable = Buffer.from("{not json");
    expect(
      await codeOf(anyone.receiveInbound({ channelId: WEBHOOK.id, body: unreadable, headers: signed(unreadable) })),
    ).toBe(Code.InvalidArgument);
    expect(await codeOf(anyone.receiveInbound({ channelId: randomUUID(), body, headers: signed(body) }))).toBe(
      Code.NotFound,
    );
    expect(s.posted).toEqual([]);
  });

  it("answers Meta's subscription check only with the channel's verify token", async () => {
    const s = setup();
    const anyone = s.client({ kind: "public" });
    const query = (token: string) => `hub.mode=subscribe&hub.verify_token=${token}&hub.challenge=42`;
    expect((await anyone.answerInboundChallenge({ channelId: META.id, query: query("vt") })).challenge).toBe("42");
    expect(await codeOf(anyone.answerInboundChallenge({ channelId: META.id, query: query("no") }))).toBe(
      Code.PermissionDenied,
    );
  });
});
