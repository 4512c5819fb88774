import { randomBytes, randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_TOKEN, fixtures, startTestApp, type TestApp } from "./helpers/app.js";
import { startHttpSink } from "./helpers/http-sink.js";
import { freePort, spawnService } from "./helpers/process.js";
import { find, type Sample, sampleValue, scrape } from "./helpers/prometheus.js";
import { send } from "./helpers/raw-http.js";
import { openSocket } from "./helpers/ws.js";

const shared = { PUBLIC_URL: "http://127.0.0.1:8080", KEY_ENCRYPTION_KEY: randomBytes(32).toString("base64") };
let t: TestApp;
let fresh: Sample[];
let f: ReturnType<typeof fixtures>;
let key: string;
beforeAll(async () => {
  t = await startTestApp({
    ...shared,
    WEBHOOK_ALLOW_PRIVATE: "true",
    DELIVERY_BACKOFF_BASE_MS: "10",
    DELIVERY_CIRCUIT_COOLDOWN_MS: "200",
  });
  fresh = await scrape(`${t.baseUrl}/metrics`);
  f = fixtures(t.baseUrl);
  key = (await f.tenant()).key;
});
afterAll(() => t?.stop());

const metricsOf = () => scrape(`${t.baseUrl}/metrics`);
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-/;

describe("a fresh app", () => {
  it("exports every label set known up front at 0", () => {
    for (const outbox of ["conversations", "uploads"]) {
      expect(sampleValue(fresh, "converger_outbox_backlog", { outbox })).toBe(0);
      expect(sampleValue(fresh, "converger_outbox_oldest_age_seconds", { outbox })).toBe(0);
    }
    for (const direction of ["in", "out"])
      expect(sampleValue(fresh, "converger_ws_frames_total", { direction })).toBe(0);
    const reasons = ["normal", "going_away", "bad_token", "forbidden", "token_expired", "rate_limited", "too_big"];
    for (const reason of [...reasons, "backpressure", "other"]) {
      expect(sampleValue(fresh, "converger_ws_closes_total", { reason })).toBe(0);
    }
    for (const channel_type of ["webhook", "echo", "websocket", "telegram"]) {
      for (const outcome of ["delivered", "retry", "failed"]) {
        expect(sampleValue(fresh, "converger_deliveries_total", { channel_type, outcome })).toBe(0);
      }
    }
    for (const to of ["open", "closed"])
      expect(sampleValue(fresh, "converger_circuit_transitions_total", { to })).toBe(0);
    for (const policy of ["credential", "tenant", "ip", "auth_failures"]) {
      expect(sampleValue(fresh, "converger_rate_limit_rejections_total", { policy })).toBe(0);
    }
    for (const service of ["auth", "conversations", "delivery", "uploads"]) {
      for (const state of ["total", "idle", "waiting"]) {
        expect(sampleValue(fresh, "converger_db_pool_connections", { service, state })).toBeGreaterThanOrEqual(0);
      }
      expect(sampleValue(fresh, "converger_db_pool_max", { service })).toBeGreaterThan(0);
    }
    for (const gauge of ["converger_ws_connections", "converger_ws_subscriptions", "converger_circuits_open"]) {
      expect(sampleValue(fresh, gauge)).toBe(0);
    }
    expect(sampleValue(fresh, "converger_ws_backpressure_drops_total")).toBe(0);
    expect(sampleValue(fresh, "converger_consumer_lag", { partition: "0" })).toBe(0);
    expect(find(fresh, "converger_consumer_lag").length).toBeGreaterThan(0);
    expect(sampleValue(fresh, "converger_signing_key_age_seconds")).toBeGreaterThanOrEqual(0);
    // No Redis configured: no connection to report as up or down.
    expect(find(fresh, "converger_redis_up")).toEqual([]);
    for (const processMetric of ["process_open_fds", "process_max_fds", "process_cpu_seconds_total"]) {
      expect(sampleValue(fresh, processMetric)).toBeGreaterThan(0);
    }
    expect(find(fresh, "nodejs_eventloop_lag_seconds").length).toBe(1);
  });
});

describe("after traffic", () => {
  it("counts REST and Connect requests by route template and RPC name, never by raw path", async () => {
    const channel = await f.channel(key, "websocket");
    const { id } = await f.conversation(key, channel.id);
    const before = await metricsOf();
    const route = "/v1/conversations/{conversation_id}/activities";
    const labels = { route, method: "POST", code: "201" };
    expect((await f.message(key, id, "counted")).status).toBe(201);
    const connectPath = "/converger.v1.ConversationsService/GetConversation";
    const missing = await fetch(`${t.baseUrl}${connectPath}`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": key },
      body: JSON.stringify({ id: randomUUID() }),
    });
    expect(missing.status).toBe(404);
    const hostile = await send(Number(new URL(t.baseUrl).port), { method: "GET", target: "/x/%00/../..", headers: [] });
    expect(hostile.status).toBeGreaterThanOrEqual(400);
    const after = await metricsOf();
    const delta = (name: string, l: Record<string, string>) =>
      (sampleValue(after, name, l) ?? 0) - (sampleValue(before, name, l) ?? 0);
    expect(delta("converger_http_requests_total", labels)).toBe(1);
    expect(delta("converger_http_request_duration_seconds_count", { route, method: "POST" })).toBe(1);
    expect(delta("converger_http_requests_total", { route: connectPath, method: "POST", code: "404" })).toBe(1);
    expect(delta("converger_http_requests_total", { route: "unmatched", method: "GET" })).toBe(1);
    const rpc = { service: "ConversationsService", method: "CreateActivity" };
    expect(delta("converger_rpc_requests_total", { ...rpc, code: "ok" })).toBe(1);
    expect(delta("converger_rpc_duration_seconds_count", rpc)).toBe(1);
    const notFound = { service: "ConversationsService", method: "GetConversation", code: "not_found" };
    expect(delta("converger_rpc_requests_total", notFound)).toBe(1);
    const routes = find(after, "converger_http_requests_total").map((s) => s.labels.route as string);
    expect(routes.filter((r) => UUID.test(r) || r.includes("%") || r.includes(".."))).toEqual([]);
    expect(
      sampleValue(after, "converger_db_query_duration_seconds_count", { service: "conversations" }),
    ).toBeGreaterThan(0);
    expect(
      sampleValue(after, "converger_db_pool_connections", { service: "conversations", state: "total" }),
    ).toBeGreaterThan(0);
  });

  it("follows a WebSocket session: connections, subscriptions, frames and its close", async () => {
    const channel = await f.channel(key, "websocket");
    const { id } = await f.conversation(key, channel.id);
    const token = await f.clientToken(key, id, "metrics-user");
    const before = await metricsOf();
    const socket = await openSocket(`ws://127.0.0.1:${t.app.ports.edge}/ws?token=${token}`);
    await socket.next((fr) => fr.type === "connection_established");
    socket.send({ type: "ping" });
    await socket.next((fr) => fr.type === "pong");
    const open = await metricsOf();
    expect(sampleValue(open, "converger_ws_connections")).toBe(1);
    expect(sampleValue(open, "converger_ws_subscriptions")).toBe(1);
    expect(
      (sampleValue(open, "converger_ws_frames_total", { direction: "in" }) ?? 0) -
        (sampleValue(before, "converger_ws_frames_total", { direction: "in" }) ?? 0),
    ).toBe(1);
    expect(
      (sampleValue(open, "converger_ws_frames_total", { direction: "out" }) ?? 0) -
        (sampleValue(before, "converger_ws_frames_total", { direction: "out" }) ?? 0),
    ).toBeGreaterThanOrEqual(2);
    socket.ws.close(1000);
    await socket.closed;
    await expect
      .poll(async () => sampleValue(await metricsOf(), "converger_ws_closes_total", { reason: "normal" }))
      .toBe(1);
    const closed = await metricsOf();
    expect(sampleValue(closed, "converger_ws_connections")).toBe(0);
    expect(sampleValue(closed, "converger_ws_subscriptions")).toBe(0);
  });

  it("tells closes for an oversized frame and for a reader left behind apart", async () => {
    const channel = await f.channel(key, "websocket");
    const { id } = await f.conversation(key, channel.id);
    const wsUrl = `ws://127.0.0.1:${t.app.ports.edge}/ws?token=`;
    const big = await openSocket(wsUrl + (await f.clientToken(key, id, "too-big")));
    big.send({ type: "ping", pad: "x".repeat(70_000) });
    await big.closed;
    await expect
      .poll(async () => sampleValue(await metricsOf(), "converger_ws_closes_total", { reason: "too_big" }))
      .toBe(1);
    const slow = await openSocket(wsUrl + (await f.clientToken(key, id, "slow")));
    await slow.next((fr) => fr.type === "connection_established");
    // Stop reading: the kernel buffers fill, then the edge's backpressure limit (1 MiB) trips.
    (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const text = "x".repeat(9_000);
    for (let batch = 0; batch < 20 && slow.ws.readyState === slow.ws.OPEN; batch++) {
      await Promise.all(Array.from({ length: 50 }, () => f.message(key, id, text)));
    }
    (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    await slow.closed;
    await expect
      .poll(async () => sampleValue(await metricsOf(), "converger_ws_closes_total", { reason: "backpressure" }))
      .toBe(1);
    expect(sampleValue(await metricsOf(), "converger_ws_backpressure_drops_total")).toBe(1);
  }, 60_000);

  it("measures tries, latency, outcomes and the breaker of webhook deliveries", async () => {
    let down = true;
    const failing = await startHttpSink(() => ({ status: down ? 500 : 200 }));
    const healthy = await startHttpSink();
    try {
      const broken = await f.channel(key, "webhook", { url: failing.url });
      const working = await f.channel(key, "webhook", { url: healthy.url });
      for (const channel of [broken, working]) {
        const { id } = await f.conversation(key, channel.id);
        expect((await f.message(key, id, "deliver me")).status).toBe(201);
      }
      const webhook = (outcome: string) => ({ channel_type: "webhook", outcome });
      await expect
        .poll(async () => sampleValue(await metricsOf(), "converger_deliveries_total", webhook("failed")), {
          timeout: 15_000,
        })
        .toBe(1);
      const after = await metricsOf();
      // Five tries in a row failed: the default DELIVERY_MAX_ATTEMPTS, and the breaker's threshold.
      expect(sampleValue(after, "converger_deliveries_total", webhook("retry"))).toBe(4);
      expect(sampleValue(after, "converger_deliveries_total", webhook("delivered"))).toBe(1);
      const type = { channel_type: "webhook" };
      expect(sampleValue(after, "converger_delivery_attempt_duration_seconds_count", type)).toBe(6);
      expect(sampleValue(after, "converger_delivery_latency_seconds_count", type)).toBe(1);
      expect(sampleValue(after, "converger_delivery_latency_seconds_sum", type)).toBeLessThan(60);
      expect(sampleValue(after, "converger_circuit_transitions_total", { to: "open" })).toBe(1);
      const circuitsOpen = async () => sampleValue(await metricsOf(), "converger_circuits_open");
      await expect.poll(circuitsOpen, { timeout: 10_000 }).toBe(1);
      // The endpoint is back: the next activity goes as the half-open probe, and its delivery closes the breaker.
      down = false;
      const { id } = await f.conversation(key, broken.id);
      expect((await f.message(key, id, "probe")).status).toBe(201);
      const closed = async () =>
        sampleValue(await metricsOf(), "converger_circuit_transitions_total", { to: "closed" });
      await expect.poll(closed, { timeout: 10_000 }).toBe(1);
      await expect.poll(circuitsOpen, { timeout: 10_000 }).toBe(0);
    } finally {
      await Promise.all([failing.close(), healthy.close()]);
    }
  });

  it("samples the outbox's backlog and its oldest row's age", async () => {
    const client = await t.db.connect();
    try {
      const tenantId = randomUUID();
      let rowId: string | undefined;
      // A row the relay cannot take: it is locked by this transaction, which the relay skips.
      while (!rowId) {
        const { rows } = await client.query<{ id: string }>(
          `INSERT INTO conversations.outbox (event_id, topic, key, tenant_id, payload, created_at)
           VALUES ($1, 'converger.metrics-test', $2::text, $2::uuid, '{}', now() - interval '1 hour') RETURNING id`,
          [randomUUID(), tenantId],
        );
        await client.query("BEGIN");
        const held = await client.query("SELECT published_at FROM conversations.outbox WHERE id = $1 FOR UPDATE", [
          rows[0]?.id,
        ]);
        if (held.rows[0]?.published_at === null) rowId = rows[0]?.id;
        else await client.query("COMMIT");
      }
      const outbox = { outbox: "conversations" };
      await expect
        .poll(async () => sampleValue(await metricsOf(), "converger_outbox_backlog", outbox), { timeout: 10_000 })
        .toBe(1);
      expect(sampleValue(await metricsOf(), "converger_outbox_oldest_age_seconds", outbox)).toBeGreaterThanOrEqual(
        3600,
      );
      await client.query("DELETE FROM conversations.outbox WHERE id = $1", [rowId]);
      await client.query("COMMIT");
      await expect
        .poll(async () => sampleValue(await metricsOf(), "converger_outbox_oldest_age_seconds", outbox), {
          timeout: 10_000,
        })
        .toBe(0);
    } finally {
      client.release();
    }
  });
});

describe("an edge-only process", () => {
  it("serves /metrics on WS_PORT to ADMIN_ALLOWED_IPS, with its sockets", async () => {
    const wsPort = await freePort();
    const upstream = `http://127.0.0.1:${t.app.ports.grpc}`;
    const edge = await spawnService(
      {
        ...shared,
        ADMIN_TOKEN,
        WS_PORT: String(wsPort),
        GRPC_PORT: String(await freePort()),
        CONVERSATIONS_GRPC_URL: upstream,
        AUTH_GRPC_URL: upstream,
        TRUSTED_PROXIES: "127.0.0.1/32",
        ADMIN_ALLOWED_IPS: "127.0.0.1/32",
      },
      ["--services=realtime"],
      /^edge /m,
    );
    try {
      const metricsUrl = `http://127.0.0.1:${wsPort}/metrics`;
      const channel = await f.channel(key, "websocket");
      const { id } = await f.conversation(key, channel.id);
      const socket = await openSocket(`ws://127.0.0.1:${wsPort}/ws?token=${await f.clientToken(key, id, "edge-user")}`);
      await socket.next((fr) => fr.type === "connection_established");
      expect(sampleValue(await scrape(metricsUrl), "converger_ws_connections")).toBe(1);
      const outsider = await fetch(metricsUrl, { headers: { "x-forwarded-for": "203.0.113.7" } });
      expect(outsider.status).toBe(403);
      socket.ws.close(1000);
      await socket.closed;
      await expect.poll(async () => sampleValue(await scrape(metricsUrl), "converger_ws_connections")).toBe(0);
    } finally {
      await edge.stop();
    }
  }, 90_000);
});
