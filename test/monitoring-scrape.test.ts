import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { ADMIN_TOKEN, call, fixtures } from "./helpers/app.js";
import { panelQueries, withGrafanaRanges } from "./helpers/dashboards.js";
import { createTestDatabase } from "./helpers/database.js";
import { startHttpSink } from "./helpers/http-sink.js";
import { freePort, type ServiceProcess, spawnService } from "./helpers/process.js";
import { openSocket } from "./helpers/ws.js";

// A real Prometheus (Debian package prometheus) scraping the product as `npm start` runs it,
// one process, every service, no Redis, no Kafka. Scrapes every second, so short windows hold data.
const SCRAPE_INTERVAL = "1s";
const RANGES = { __rate_interval: "30s", __interval: "5s", __range: "10m" };
// Panels about an engine `npm start` does not run: they have data where it runs (test/redis-metrics.test.ts).
const NOT_IN_DEFAULTS = new Set(["realtime-edge.json › Redis connections"]);

let service: ServiceProcess;
let prometheus: ChildProcess;
let base: string;
let promUrl: string;
const sink = await startHttpSink((req) => ({ status: req.path.startsWith("/down") ? 503 : 200 }));

async function startPrometheus(target: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "converger-prometheus-"));
  const port = await freePort();
  writeFileSync(
    join(dir, "prometheus.yml"),
    JSON.stringify({
      global: { scrape_interval: SCRAPE_INTERVAL, evaluation_interval: SCRAPE_INTERVAL },
      scrape_configs: [{ job_name: "converger", metrics_path: "/metrics", static_configs: [{ targets: [target] }] }],
    }),
  );
  promUrl = `http://127.0.0.1:${port}`;
  prometheus = spawn(
    "prometheus",
    [
      `--config.file=${join(dir, "prometheus.yml")}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdio: "ignore" },
  );
  await vi.waitFor(
    async () => {
      const res = await fetch(`${promUrl}/-/ready`);
      if (res.status !== 200) throw new Error(`prometheus not ready: ${res.status}`);
    },
    { timeout: 30_000, interval: 200 },
  );
}

async function query(expr: string): Promise<unknown[]> {
  const res = await fetch(`${promUrl}/api/v1/query?${new URLSearchParams({ query: expr })}`);
  const body = (await res.json()) as { status: string; error?: string; data?: { result: unknown[] } };
  if (body.status !== "success") throw new Error(`${expr}: ${body.error}`);
  return body.data?.result ?? [];
}

/** What an integrator does in a few seconds: REST and Connect calls, a socket, deliveries good and bad. */
async function traffic(): Promise<void> {
  const f = fixtures(base);
  const tenant = await f.tenant("Scraped Co");
  const good = await f.channel(tenant.key, "webhook", { url: `${sink.url}/up` });
  const bad = await f.channel(tenant.key, "webhook", { url: `${sink.url}/down` });
  for (const channel of [good, bad]) {
    const conversation = await f.conversation(tenant.key, channel.id);
    for (let i = 0; i < 3; i++) await f.message(tenant.key, conversation.id, `m${i}`);
  }
  const ws = await f.channel(tenant.key, "websocket");
  const minted = await call(base, "POST", "/v1/tokens", { token: ws.secret, body: { user: { id: "u" } } });
  const socket = await openSocket(minted.body.stream_url as string);
  await socket.next((frame) => frame.type === "connection_established");
  socket.send({ type: "activity", client_id: "scrape-1", text: "over the socket" });
  await socket.next((frame) => frame.type === "ack");
  socket.ws.close();
  await call(base, "GET", "/v1/conversations/not-a-uuid", { key: tenant.key });
  await call(base, "GET", "/v1/conversations", { key: "cvg_wrong" });
  await call(base, "POST", "/admin/v1/signing-keys/rotate", { token: ADMIN_TOKEN, body: {} });
}

beforeAll(async () => {
  const [port, wsPort, grpcPort] = [await freePort(), await freePort(), await freePort()];
  base = `http://127.0.0.1:${port}`;
  service = await spawnService({
    PORT: String(port),
    WS_PORT: String(wsPort),
    GRPC_PORT: String(grpcPort),
    DATABASE_URL: await createTestDatabase(),
    DATA_DIR: mkdtempSync(join(tmpdir(), "converger-scraped-")),
    ADMIN_TOKEN,
    WEBHOOK_ALLOW_PRIVATE: "true",
    DELIVERY_BACKOFF_BASE_MS: "20",
    DELIVERY_MAX_ATTEMPTS: "2",
  });
  await startPrometheus(`127.0.0.1:${port}`);
  await traffic();
}, 120_000);

afterAll(async () => {
  prometheus?.kill("SIGTERM");
  await service?.stop();
  await sink.close();
});

describe("the dashboards against a real Prometheus scraping the product", () => {
  it("finds data for every panel's query", async () => {
    const queries = panelQueries();
    expect(queries.length).toBeGreaterThanOrEqual(12);
    // Every query answers once the traffic's series are in (a few scrapes after it).
    const empty = async () => {
      const missing: string[] = [];
      for (const q of queries) {
        if (NOT_IN_DEFAULTS.has(`${q.dashboard} › ${q.panel}`)) continue;
        if ((await query(withGrafanaRanges(q.expr, RANGES))).length === 0) missing.push(`${q.dashboard} › ${q.panel}`);
      }
      return missing;
    };
    await expect.poll(empty, { timeout: 60_000, interval: 2_000 }).toEqual([]);
  }, 90_000);

  it("scrapes every family of the /metrics contract", async () => {
    const names = (await (await fetch(`${promUrl}/api/v1/label/__name__/values`)).json()) as { data: string[] };
    const families = new Set(names.data.map((n) => n.replace(/_(bucket|sum|count)$/, "")));
    for (const family of [
      "converger_http_requests_total",
      "converger_http_request_duration_seconds",
      "converger_rpc_requests_total",
      "converger_rpc_duration_seconds",
      "converger_ws_connections",
      "converger_ws_frames_total",
      "converger_outbox_backlog",
      "converger_consumer_lag",
      "converger_deliveries_total",
      "converger_delivery_latency_seconds",
      "converger_db_pool_connections",
      "converger_signing_key_age_seconds",
    ]) {
      expect(families.has(family), family).toBe(true);
    }
  });
});
