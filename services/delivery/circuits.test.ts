import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_TOKEN, call, fixtures, startTestApp, type TestApp } from "../../test/helpers/app.js";
import { startHttpSink } from "../../test/helpers/http-sink.js";
import { loadConfig } from "../common/config.js";
import { createLogger } from "../common/obs/logger.js";
import { startApp } from "../host/app.js";
import { circuitPolicy, cooldownMs, createCircuitStore } from "./store/circuits.js";

// Quick retries, a cool-down short enough to watch it double (400, 800, 1600 ms), and tries to spare for probes.
const COOLDOWN_MS = 400;
const env = {
  WEBHOOK_ALLOW_PRIVATE: "true",
  DELIVERY_BACKOFF_BASE_MS: "5",
  DELIVERY_CIRCUIT_COOLDOWN_MS: String(COOLDOWN_MS),
  DELIVERY_MAX_ATTEMPTS: "10",
};

let t: TestApp;
let key: string;
let f: ReturnType<typeof fixtures>;
beforeAll(async () => {
  t = await startTestApp(env);
  f = fixtures(t.baseUrl);
  key = (await f.tenant()).key;
});
afterAll(() => t?.stop());

// biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON bodies
type Json = Record<string, any>;

const healthOf = async (channelId: string) =>
  (await call(t.baseUrl, "GET", `/v1/channels/${channelId}`, { key })).body.health;
const deliveriesOf = async (activityId: string): Promise<Json[]> =>
  (await call(t.baseUrl, "GET", `/v1/activities/${activityId}/deliveries`, { key })).body.deliveries;
const allDeliveries = async (channelId: string): Promise<Json[]> =>
  (await call(t.baseUrl, "GET", `/v1/deliveries?channel_id=${channelId}&limit=100`, { key })).body.deliveries;
/** Once no try of the channel is out: tries claimed just before the circuit opened may still go and end. */
const settled = async (channelId: string) =>
  expect
    .poll(
      async () =>
        (
          await t.db.query(
            "SELECT count(*)::int AS n FROM deliveries WHERE channel_id = $1 AND status = 'pending' AND lease_until > now()",
            [channelId],
          )
        ).rows[0].n,
      { timeout: 5_000, interval: 10 },
    )
    .toBe(0);
const textOf = (body: string) => (JSON.parse(body) as { activity: { text: string } }).activity.text;

describe("cool-down schedule", () => {
  it("doubles from 5 s per failed probe and stops at 5 min", () => {
    const policy = circuitPolicy(5_000);
    expect(policy.failureThreshold).toBe(5);
    expect([0, 1, 2, 3, 4, 5, 6, 7, 20].map((n) => cooldownMs(n, policy))).toEqual([
      5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000, 300_000,
    ]);
  });
});

describe("circuit breaker", () => {
  it("opens after 5 failed tries, holds queued deliveries without using attempts, probes one at a time, and closes on recovery", async () => {
    let mode: "fail" | "slow-fail" | "ok" = "fail";
    let inFlight = 0;
    let maxInFlightWhileOpen = 0;
    let open = false;
    const sink = await startHttpSink(async () => {
      inFlight++;
      if (open) maxInFlightWhileOpen = Math.max(maxInFlightWhileOpen, inFlight);
      try {
        // A slow endpoint: a second probe sent during this one would overlap it.
        if (mode === "slow-fail") await new Promise((r) => setTimeout(r, 150));
        return { status: mode === "ok" ? 200 : 503 };
      } finally {
        inFlight--;
      }
    });
    try {
      const channel = await f.channel(key, "webhook", { url: sink.url });
      expect(await healthOf(channel.id)).toBe("healthy");
      const conversations: string[] = [];
      for (let i = 0; i < 5; i++) conversations.push((await f.conversation(key, channel.id)).id);
      const firsts: string[] = [];
      for (const [i, id] of conversations.entries()) firsts.push((await f.message(key, id, `c${i}-1`)).body.id);

      await expect.poll(() => healthOf(channel.id), { timeout: 5_000, interval: 20 }).toBe("down");
      // Tries already under way when the 5th failure opened it may still end; from now on only probes go.
      await settled(channel.id);
      open = true;
      const triesWhenOpened = sink.requests.length;
      const circuit = (await t.db.query("SELECT * FROM channel_circuits WHERE channel_id = $1", [channel.id])).rows[0];
      expect(circuit).toMatchObject({ state: "open", cooldown_ms: COOLDOWN_MS });
      expect(circuit.consecutive_failures).toBeGreaterThanOrEqual(5);
      expect(circuit.consecutive_failures).toBe(triesWhenOpened);

      // Queued while open: pending, no attempt used, due when the circuit allows a probe.
      mode = "slow-fail";
      const later = [
        (await f.message(key, conversations[0] as string, "c0-2")).body.id,
        (await f.message(key, conversations[0] as string, "c0-3")).body.id,
      ];
      for (const id of later) {
        await expect.poll(async () => (await deliveriesOf(id)).length, { timeout: 5_000 }).toBe(1);
        const [delivery] = await deliveriesOf(id);
        expect(delivery).toMatchObject({ status: "pending", attempts: 0 });
        expect(new Date(delivery?.next_attempt_at).getTime()).toBeGreaterThanOrEqual(
          (circuit.opened_until as Date).getTime(),
        );
      }
      // The lines' heads, failed before, wait for the cool-down too.
      for (const id of firsts) {
        const [delivery] = await deliveriesOf(id);
        expect(delivery).toMatchObject({ status: "pending" });
        expect(new Date(delivery?.next_attempt_at).getTime()).toBeGreaterThanOrEqual(
          (circuit.opened_until as Date).getTime(),
        );
      }

      // Two failed probes, each alone, each after twice the previous cool-down.
      await expect.poll(() => sink.requests.length, { timeout: 10_000, interval: 20 }).toBe(triesWhenOpened + 2);
      const [probe1, probe2] = sink.requests.slice(triesWhenOpened).map((r) => r.at) as [number, number];
      expect(probe2 - probe1).toBeGreaterThanOrEqual(2 * COOLDOWN_MS);
      await expect.poll(() => healthOf(channel.id), { timeout: 5_000, interval: 20 }).toBe("down");
      const reopened = (await t.db.query("SELECT * FROM channel_circuits WHERE channel_id = $1", [channel.id])).rows[0];
      expect(reopened).toMatchObject({ state: "open", cooldown_ms: 4 * COOLDOWN_MS, probe_delivery_id: null });
      expect(maxInFlightWhileOpen).toBe(1);

      // The endpoint is back: the next probe closes the circuit and everything goes out in seq order.
      mode = "ok";
      const everything = [...firsts, ...later];
      await expect
        .poll(async () => (await allDeliveries(channel.id)).filter((d) => d.status === "delivered").length, {
          timeout: 10_000,
        })
        .toBe(everything.length);
      expect(await healthOf(channel.id)).toBe("healthy");
      const probe3 = sink.requests[triesWhenOpened + 2]?.at as number;
      expect(probe3 - probe2).toBeGreaterThanOrEqual(4 * COOLDOWN_MS);
      const delivered = sink.requests.filter((_r, i) => i >= triesWhenOpened + 2).map((r) => textOf(r.body));
      for (const [i] of conversations.entries()) {
        const texts = delivered.filter((x) => x.startsWith(`c${i}-`));
        expect(texts).toEqual(i === 0 ? ["c0-1", "c0-2", "c0-3"] : [`c${i}-1`]);
      }
      // Every attempt counted is a request the endpoint saw: none was used up while the circuit was open.
      const attempts = (await allDeliveries(channel.id)).reduce((n, d) => n + d.attempts, 0);
      expect(attempts).toBe(sink.requests.length);
      const closed = (await t.db.query("SELECT * FROM channel_circuits WHERE channel_id = $1", [channel.id])).rows[0];
      expect(closed).toMatchObject({ state: "closed", consecutive_failures: 0, cooldown_ms: 0 });
    } finally {
      await sink.close();
    }
  });

  it("reads degraded after failed tries with the circuit still closed, healthy after a delivered one", async () => {
    let failing = true;
    const sink = await startHttpSink(() => ({ status: failing ? 500 : 200 }));
    try {
      const channel = await f.channel(key, "webhook", { url: sink.url });
      const { id } = await f.conversation(key, channel.id);
      const posted = (await f.message(key, id, "wobbly")).body;
      // Tries 1–4 fail within ~200 ms, the 5th ~400 ms later: degraded in between.
      await expect.poll(() => healthOf(channel.id), { timeout: 5_000, interval: 20 }).toBe("degraded");
      const listed = await call(t.baseUrl, "GET", "/v1/channels?limit=100", { key });
      expect(listed.body.channels.find((c: Json) => c.id === channel.id)?.health).toBe("degraded");
      failing = false;
      await expect.poll(async () => (await deliveriesOf(posted.id))[0]?.status, { timeout: 5_000 }).toBe("delivered");
      expect(await healthOf(channel.id)).toBe("healthy");
    } finally {
      await sink.close();
    }
  });
});

describe("circuit breaker across processes", () => {
  it("lets one probe through for two delivery workers sharing the database", async () => {
    // A second node (without Kafka, delivery runs beside conversations): its worker claims from the same tables.
    const second = await startApp(
      loadConfig({
        ...env,
        SERVICES: "conversations,delivery",
        HOST: "127.0.0.1",
        GRPC_PORT: "0",
        DATABASE_URL: String(t.db.options.connectionString),
        // Nodes sharing a database share its keyring: here, the first node's generated key.
        DATA_DIR: t.app.config.dataDir,
        ADMIN_TOKEN,
        LOG_LEVEL: "silent",
      }),
      createLogger("silent"),
    );
    let ok = false;
    let open = false;
    let inFlight = 0;
    let maxInFlightWhileOpen = 0;
    const sink = await startHttpSink(async () => {
      inFlight++;
      if (open) maxInFlightWhileOpen = Math.max(maxInFlightWhileOpen, inFlight);
      // Slow answers: probes of both workers, had both gone, would overlap.
      await new Promise((r) => setTimeout(r, 80));
      inFlight--;
      // The successful probe closes the circuit: after it, lines run side by side again.
      if (ok) open = false;
      return { status: ok ? 200 : 503 };
    });
    try {
      const channel = await f.channel(key, "webhook", { url: sink.url });
      const posted: string[] = [];
      for (let i = 0; i < 6; i++) {
        const { id } = await f.conversation(key, channel.id);
        posted.push((await f.message(key, id, `p${i}`)).body.id);
      }
      await expect.poll(() => healthOf(channel.id), { timeout: 5_000, interval: 20 }).toBe("down");
      await settled(channel.id);
      open = true;
      const triesWhenOpened = sink.requests.length;
      // Both workers wake when the cool-down ends; one probe goes, fails, and the next waits twice as long.
      await expect.poll(() => sink.requests.length, { timeout: 5_000, interval: 20 }).toBe(triesWhenOpened + 1);
      await expect.poll(() => inFlight).toBe(0);
      ok = true;
      await expect
        .poll(async () => (await allDeliveries(channel.id)).filter((d) => d.status === "delivered").length, {
          timeout: 10_000,
        })
        .toBe(posted.length);
      const [probe1, probe2] = sink.requests.slice(triesWhenOpened).map((r) => r.at) as [number, number];
      expect(probe2 - probe1).toBeGreaterThanOrEqual(2 * COOLDOWN_MS);
      expect(maxInFlightWhileOpen).toBe(1);
      expect(await healthOf(channel.id)).toBe("healthy");
      const attempts = (await allDeliveries(channel.id)).reduce((n, d) => n + d.attempts, 0);
      expect(attempts).toBe(sink.requests.length);
    } finally {
      await sink.close();
      await second.stop();
    }
  });
});

describe("pacing", () => {
  it("sends at most rate_limit_per_second tries per second, without using attempts", async () => {
    const sink = await startHttpSink();
    try {
      const channel = await f.channel(key, "webhook", { url: sink.url, rate_limit_per_second: 2 });
      expect((await call(t.baseUrl, "GET", `/v1/channels/${channel.id}`, { key })).body.config).toMatchObject({
        rate_limit_per_second: 2,
      });
      const conversations: string[] = [];
      for (let i = 0; i < 3; i++) conversations.push((await f.conversation(key, channel.id)).id);
      const total = 7;
      for (let n = 0; n < total; n++) await f.message(key, conversations[n % 3] as string, `m${n}`);
      await expect.poll(() => sink.requests.length, { timeout: 10_000 }).toBe(total);
      const at = sink.requests.map((r) => r.at).sort((a, b) => a - b);
      // Fixed one-second windows from the first try (give or take the way from worker to sink): at most 2 in each.
      const first = at[0] as number;
      const perWindow = new Map<number, number>();
      for (const x of at) {
        const window = Math.floor((x - first + 100) / 1000);
        perWindow.set(window, (perWindow.get(window) ?? 0) + 1);
      }
      expect(Math.max(...perWindow.values())).toBeLessThanOrEqual(2);
      expect((at[total - 1] as number) - first).toBeGreaterThan(2_900);
      await expect
        .poll(async () => (await allDeliveries(channel.id)).filter((d) => d.status === "delivered").length, {
          timeout: 5_000,
        })
        .toBe(total);
      expect((await allDeliveries(channel.id)).map((d) => d.attempts)).toEqual(Array(total).fill(1));
    } finally {
      await sink.close();
    }
  });
});

describe("health without the delivery service", () => {
  it("answers channel reads with health unspecified when delivery is unreachable", async () => {
    const services = "gateway,conversations,auth,realtime,uploads";
    const alone = await startTestApp({ ...env, SERVICES: services, DELIVERY_GRPC_URL: "http://127.0.0.1:1" });
    try {
      const g = fixtures(alone.baseUrl);
      const tenant = await g.tenant();
      const channel = await g.channel(tenant.key, "webhook", { url: "http://127.0.0.1:9/hook" });
      const got = await call(alone.baseUrl, "GET", `/v1/channels/${channel.id}`, { key: tenant.key });
      expect(got.status).toBe(200);
      expect(got.body.health).toBe("unspecified");
      const listed = await call(alone.baseUrl, "GET", "/v1/channels", { key: tenant.key });
      expect(listed.status).toBe(200);
      expect(listed.body.channels[0].health).toBe("unspecified");
    } finally {
      await alone.stop();
    }
  });
});

describe("half-open probes", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t.stop());

  it("are not starved by open circuits that have nothing left to probe", async () => {
    const [tenant, dead, live, delivery] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
    // The dead channel's circuit opened longest ago, so it would take the only slot first.
    await t.db.query(
      `INSERT INTO channel_circuits (channel_id, tenant_id, state, opened_until, cooldown_ms)
       VALUES ($1, $3, 'open', now() - interval '2 minutes', 5000), ($2, $3, 'open', now() - interval '1 minute', 5000)`,
      [dead, live, tenant],
    );
    await t.db.query(
      `INSERT INTO deliveries (id, tenant_id, activity_id, conversation_id, seq, channel_id, activity, next_attempt_at)
       VALUES ($1, $2, $3, $4, 1, $5, '{}', now() - interval '1 second')`,
      [delivery, tenant, randomUUID(), randomUUID(), live],
    );
    const probes = await createCircuitStore(t.db as never).claimProbes(1);
    expect(probes.map((p) => p.id)).toEqual([delivery]);
  });
});
