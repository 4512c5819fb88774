import { randomUUID } from "node:crypto";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ChannelHealth, ChannelStatus, ChannelsService, ChannelType } from "../../gen/converger/v1/channels_pb.js";
import { EventsService } from "../../gen/converger/v1/events_pb.js";
import { TenantStatus, TenantsService } from "../../gen/converger/v1/tenants_pb.js";
import type { Principal } from "../common/access/context.js";
import { createPrincipalTransports } from "../common/access/principal-transport.js";
import { type BusFrame, createLocalBus, tenantTopic } from "../common/events/bus.js";
import { REDACTED } from "./channel-config.js";
import { channelsImpl } from "./handlers/channels.js";
import { eventsImpl } from "./handlers/events.js";
import { tenantsImpl } from "./handlers/tenants.js";
import type { ChannelStore } from "./store/channels.js";
import type { EventStore } from "./store/events.js";
import type { ChannelRow, EventRow, TenantRow } from "./store/rows.js";
import type { TenantStore } from "./store/tenants.js";

const TENANT = randomUUID();
const OTHER = randomUUID();
const key = (tenantId = TENANT): Principal => ({ kind: "api_key", tenantId });

function setup() {
  const channels = new Map<string, ChannelRow>();
  const tenants = new Map<string, TenantRow>();
  const events: EventRow[] = [];
  const changes: string[] = [];
  const bus = createLocalBus((error) => {
    throw error;
  });
  const own = (tenantId: string, id: string) =>
    channels.get(id)?.tenant_id === tenantId ? channels.get(id) : undefined;
  const channelStore: ChannelStore = {
    async create(tenantId, name, type, config) {
      const now = new Date();
      const row: ChannelRow = {
        id: randomUUID(),
        tenant_id: tenantId,
        name,
        type,
        status: "active",
        config,
        secret: `cvs_${randomUUID()}`,
        created_at: now,
        updated_at: now,
        sort_key: now.toISOString(),
      };
      channels.set(row.id, row);
      return row;
    },
    async list(tenantId, page) {
      return [...channels.values()].filter((c) => c.tenant_id === tenantId).slice(0, page.limit + 1);
    },
    get: async (tenantId, id) => own(tenantId, id),
    async update(tenantId, id, change) {
      const row = own(tenantId, id);
      if (row) Object.assign(row, Object.fromEntries(Object.entries(change).filter(([, v]) => v !== undefined)));
      return row;
    },
    async rotateSecret(tenantId, id) {
      const row = own(tenantId, id);
      if (row) row.secret = `cvs_${randomUUID()}`;
      return row;
    },
  };
  const tenantStore: TenantStore = {
    async create(name) {
      const now = new Date();
      const row: TenantRow = {
        id: randomUUID(),
        name,
        status: "active",
        rate_limit_per_minute: null,
        created_at: now,
        updated_at: now,
        sort_key: now.toISOString(),
      };
      tenants.set(row.id, row);
      return { row, apiKey: `cvg_${randomUUID()}` };
    },
    list: async (page) => [...tenants.values()].slice(0, page.limit + 1),
    get: async (id) => tenants.get(id),
    async update(id, change) {
      const row = tenants.get(id);
      if (!row) return undefined;
      if (change.status) row.status = change.status;
      if (change.rateLimitPerMinute !== undefined) row.rate_limit_per_minute = change.rateLimitPerMinute;
      return row;
    },
    async rotateKey(id) {
      const row = tenants.get(id);
      return row && { row, apiKey: `cvg_${randomUUID()}` };
    },
    findByKeyHash: async () => undefined,
  };
  const eventStore: EventStore = {
    async create(tenantId, message) {
      const row: EventRow = { id: randomUUID(), tenant_id: tenantId, message, created_at: new Date(), sort_key: "" };
      events.unshift(row);
      return row;
    },
    list: async (tenantId, page) => events.filter((e) => e.tenant_id === tenantId).slice(0, page.limit + 1),
  };
  const as = createPrincipalTransports((router) => {
    router.service(
      ChannelsService,
      channelsImpl({
        channels: channelStore,
        configPolicy: { allowPrivate: false },
        onChannelChange: () => changes.push("channel"),
        // The delivery service knows this tenant's channels only, as its circuits do.
        health: async (tenantId, ids) =>
          new Map(tenantId === TENANT ? ids.map((id) => [id, ChannelHealth.DEGRADED]) : []),
      }),
    );
    router.service(
      TenantsService,
      tenantsImpl({ tenants: tenantStore, onCredentialsChange: () => changes.push("tenant") }),
    );
    router.service(EventsService, eventsImpl({ events: eventStore, bus, onOutboxWrite: () => changes.push("outbox") }));
  });
  return {
    as,
    bus,
    changes,
    stored: (id: string) => channels.get(id),
    channels: (p: Principal = key()) => createClient(ChannelsService, as(p)),
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

const infobip = { base_url: "https://api.infobip.com/", api_key: "k-secret", sender: "4412345" };

describe("ChannelsService handlers", () => {
  it("shows the secret once at creation and redacts secret config on every read, with health", async () => {
    const s = setup();
    const created = await s
      .channels()
      .createChannel({ name: "wa", type: ChannelType.WHATSAPP_INFOBIP, config: infobip });
    expect(created.secret).toMatch(/^cvs_/);
    expect(created.config).toEqual({ ...infobip, api_key: REDACTED });
    const read = await s.channels().getChannel({ id: created.id });
    expect(read.secret).toBeUndefined();
    expect(read.config?.api_key).toBe(REDACTED);
    expect(read.health).toBe(ChannelHealth.DEGRADED);
    expect((await s.channels().listChannels({})).channels.map((c) => [c.id, c.secret, c.health])).toEqual([
      [created.id, undefined, ChannelHealth.DEGRADED],
    ]);
  });

  it("names the bad config field, refusing private webhook hosts and unknown settings", async () => {
    const s = setup();
    const bad = async (config: Record<string, string>) =>
      ConnectError.from(
        await s
          .channels()
          .createChannel({ name: "w", type: ChannelType.WEBHOOK, config })
          .catch((e) => e),
      );
    expect((await bad({ url: "http://127.0.0.1/hook" })).rawMessage).toMatch(
      /^config\.url: must not point at a private/,
    );
    expect((await bad({ url: "https://ok.example", color: "red" })).rawMessage).toBe(
      "config.color: is not a webhook setting",
    );
    expect((await bad({})).code).toBe(Code.InvalidArgument);
  });

  it("keeps a stored secret when an update sends the redacted placeholder, and announces the change", async () => {
    const s = setup();
    const { id } = await s
      .channels()
      .createChannel({ name: "wa", type: ChannelType.WHATSAPP_INFOBIP, config: infobip });
    const updated = await s
      .channels()
      .updateChannel({ id, status: ChannelStatus.INACTIVE, config: { ...infobip, api_key: REDACTED, sender: "99" } });
    expect(updated.status).toBe(ChannelStatus.INACTIVE);
    expect(updated.config?.sender).toBe("99");
    expect(s.stored(id)?.config).toEqual({ ...infobip, sender: "99" });
    expect(s.changes).toEqual(["channel"]);
    const renamed = await s.channels().updateChannel({ id, name: "renamed" });
    expect(renamed.name).toBe("renamed");
    // A rename changes no credential: cached lookups elsewhere may keep it.
    expect(s.changes).toEqual(["channel"]);
  });

  it("answers another tenant's channel as not found on every call", async () => {
    const s = setup();
    const { id } = await s.channels().createChannel({ name: "e", type: ChannelType.ECHO });
    const theirs = s.channels(key(OTHER));
    expect(await codeOf(theirs.getChannel({ id }))).toBe(Code.NotFound);
    expect(await codeOf(theirs.updateChannel({ id, name: "x" }))).toBe(Code.NotFound);
    expect(await codeOf(theirs.rotateChannelSecret({ id }))).toBe(Code.NotFound);
    expect((await theirs.listChannels({})).channels).toEqual([]);
    expect(await codeOf(s.channels({ kind: "operator" }).listChannels({}))).toBe(Code.PermissionDenied);
  });
});

describe("TenantsService handlers", () => {
  it("creates with a key, refuses an empty update, and forgets cached credentials on changes", async () => {
    const s = setup();
    const tenants = createClient(TenantsService, s.as({ kind: "operator" }));
    const created = await tenants.createTenant({ name: "Acme" });
    expect(created).toMatchObject({ name: "Acme", status: TenantStatus.ACTIVE });
    expect(created.apiKey).toMatch(/^cvg_/);
    expect(await codeOf(tenants.updateTenant({ id: created.id }))).toBe(Code.InvalidArgument);
    const limited = await tenants.updateTenant({ id: created.id, rateLimitPerMinute: 20 });
    expect(limited.rateLimitPerMinute).toBe(20);
    expect((await tenants.updateTenant({ id: created.id, rateLimitPerMinute: 0 })).rateLimitPerMinute).toBe(0);
    const rotated = await tenants.rotateTenantKey({ id: created.id });
    expect(rotated.apiKey).not.toBe(created.apiKey);
    expect(s.changes).toEqual(["tenant", "tenant", "tenant"]);
    expect(await codeOf(tenants.getTenant({ id: randomUUID() }))).toBe(Code.NotFound);
    expect(await codeOf(tenants.rotateTenantKey({ id: randomUUID() }))).toBe(Code.NotFound);
  });
});

describe("EventsService handlers", () => {
  it("stores and pushes an event of the caller's tenant, and refuses another X-Tenant-ID", async () => {
    const s = setup();
    const events = createClient(EventsService, s.as(key()));
    const live: BusFrame[] = [];
    s.bus.subscribe(tenantTopic(TENANT), (frame) => live.push(frame));
    const event = await events.createEvent({ tenantId: TENANT.toUpperCase(), message: "deployed" });
    expect(event).toMatchObject({ tenantId: TENANT, message: "deployed" });
    expect(live).toMatchObject([{ type: "event_created", event: { id: event.id, message: "deployed" } }]);
    expect(s.changes).toEqual(["outbox"]);
    expect(await codeOf(events.createEvent({ tenantId: OTHER, message: "sneak" }))).toBe(Code.PermissionDenied);
    expect(await codeOf(events.createEvent({ tenantId: TENANT, message: "" }))).toBe(Code.InvalidArgument);
    expect((await events.listEvents({})).events.map((e) => e.message)).toEqual(["deployed"]);
    expect((await createClient(EventsService, s.as(key(OTHER))).listEvents({})).events).toEqual([]);
  });
});
