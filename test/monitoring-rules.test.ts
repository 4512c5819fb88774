import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { allPanels, loadDashboards, panelQueries, withGrafanaRanges } from "./helpers/dashboards.js";

const RULES = "k8s/monitoring/prometheus/rules.yaml";
const RULES_TESTS = "k8s/monitoring/prometheus/rules.test.yaml";

/**
 * The /metrics contract of issue 15: the families every process serves, which the dashboards and
 * rules may use and nothing else. The next session adds a test that scrapes a real process and
 * checks that each of these is served, so a rename on either side fails one of the two tests.
 */
const CONTRACT_HISTOGRAMS = [
  "converger_http_request_duration_seconds",
  "converger_rpc_duration_seconds",
  "converger_delivery_attempt_duration_seconds",
  "converger_delivery_latency_seconds",
  "converger_db_query_duration_seconds",
];
const CONTRACT_FAMILIES = [
  ...CONTRACT_HISTOGRAMS,
  "converger_http_requests_total",
  "converger_rpc_requests_total",
  "converger_ws_connections",
  "converger_ws_subscriptions",
  "converger_ws_frames_total",
  "converger_ws_closes_total",
  "converger_ws_backpressure_drops_total",
  "converger_outbox_backlog",
  "converger_outbox_oldest_age_seconds",
  "converger_consumer_lag",
  "converger_deliveries_total",
  "converger_circuits_open",
  "converger_circuit_transitions_total",
  "converger_rate_limit_rejections_total",
  "converger_processing_dead_letters_total",
  "converger_db_pool_connections",
  "converger_db_pool_max",
  "converger_redis_up",
  "converger_signing_key_age_seconds",
];
/** prom-client 15's collectDefaultMetrics(), which every process keeps serving. */
const PROM_CLIENT_HISTOGRAMS = ["nodejs_gc_duration_seconds"];
const PROM_CLIENT_DEFAULTS = [
  ...PROM_CLIENT_HISTOGRAMS,
  "process_cpu_user_seconds_total",
  "process_cpu_system_seconds_total",
  "process_cpu_seconds_total",
  "process_start_time_seconds",
  "process_resident_memory_bytes",
  "process_virtual_memory_bytes",
  "process_heap_bytes",
  "process_open_fds",
  "process_max_fds",
  "nodejs_eventloop_lag_seconds",
  "nodejs_eventloop_lag_min_seconds",
  "nodejs_eventloop_lag_max_seconds",
  "nodejs_eventloop_lag_mean_seconds",
  "nodejs_eventloop_lag_stddev_seconds",
  "nodejs_eventloop_lag_p50_seconds",
  "nodejs_eventloop_lag_p90_seconds",
  "nodejs_eventloop_lag_p99_seconds",
  "nodejs_active_resources",
  "nodejs_active_resources_total",
  "nodejs_active_handles",
  "nodejs_active_handles_total",
  "nodejs_active_requests",
  "nodejs_active_requests_total",
  "nodejs_heap_size_total_bytes",
  "nodejs_heap_size_used_bytes",
  "nodejs_external_memory_bytes",
  "nodejs_heap_space_size_total_bytes",
  "nodejs_heap_space_size_used_bytes",
  "nodejs_heap_space_size_available_bytes",
  "nodejs_version_info",
];
const KNOWN_FAMILIES = new Set([...CONTRACT_FAMILIES, ...PROM_CLIENT_DEFAULTS]);
const HISTOGRAMS = new Set([...CONTRACT_HISTOGRAMS, ...PROM_CLIENT_HISTOGRAMS]);

/** Grafana's built-in range variables, replaced by durations so that promtool can parse the query. */
const GRAFANA_RANGES: Record<string, string> = { __rate_interval: "5m", __interval: "1m", __range: "1h" };

const scratch = mkdtempSync(join(tmpdir(), "converger-monitoring-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** From the Debian package prometheus (scripts/debian-packages.txt), not from npm. */
const PROMTOOL = "promtool";

function promtool(args: string[]) {
  const run = spawnSync(PROMTOOL, args, { encoding: "utf8" });
  if (run.error) throw new Error(`promtool did not run (Debian package prometheus): ${run.error.message}`);
  return { status: run.status, output: `promtool ${args.join(" ")}\n${run.stdout}${run.stderr}` };
}

function withRanges(expr: string) {
  return withGrafanaRanges(expr, GRAFANA_RANGES);
}

/** Metric families an expression or a rules file names, histogram series folded into their family. */
function metricFamilies(text: string): string[] {
  const names = text.match(/\b(?:converger|process|nodejs)_[A-Za-z0-9_]*/g) ?? [];
  return names.map((name) => {
    const family = name.replace(/_(bucket|sum|count)$/, "");
    return family !== name && HISTOGRAMS.has(family) ? family : name;
  });
}

describe("Prometheus rules", () => {
  it("pass promtool check rules", () => {
    const run = promtool(["check", "rules", RULES]);
    expect(run.status, run.output).toBe(0);
    expect(run.output).toMatch(/SUCCESS: \d+ rules found/);
  });

  it("pass their promtool unit tests", () => {
    const run = promtool(["test", "rules", RULES_TESTS]);
    expect(run.status, run.output).toBe(0);
    expect(run.output).toContain("SUCCESS");
  });

  it("define every alert of issue 15 and test each one", () => {
    const rules = readFileSync(RULES, "utf8");
    const tests = readFileSync(RULES_TESTS, "utf8");
    const alerts = [...rules.matchAll(/^\s*- alert: (\w+)$/gm)].map((m) => m[1]);
    expect(alerts).toHaveLength(7);
    for (const alert of alerts) {
      const cases = tests.match(new RegExp(`alertname: ${alert}$`, "gm")) ?? [];
      expect(cases.length, `${alert}: a firing and a quiet case at least`).toBeGreaterThanOrEqual(2);
    }
  });

  it("name only metric families of the /metrics contract, in rules and in test series", () => {
    for (const file of [RULES, RULES_TESTS]) {
      const unknown = metricFamilies(readFileSync(file, "utf8")).filter((name) => !KNOWN_FAMILIES.has(name));
      expect(unknown, file).toEqual([]);
    }
  });
});

describe("Grafana dashboards", () => {
  it("are dashboard JSON that import onto any Prometheus data source", () => {
    const dashboards = loadDashboards();
    expect(dashboards.map((d) => d.file)).toEqual(
      expect.arrayContaining(["api-health.json", "message-pipeline.json", "realtime-edge.json"]),
    );
    const uids = new Set<string>();
    for (const { file, dashboard } of dashboards) {
      expect(dashboard.schemaVersion, file).toBeGreaterThanOrEqual(36);
      expect(dashboard.title, file).toMatch(/^Converger \/ /);
      uids.add(dashboard.uid);
      const variable = dashboard.templating?.list?.find((v) => v.name === "datasource");
      expect(variable, file).toMatchObject({ type: "datasource", query: "prometheus" });
      for (const panel of allPanels(dashboard.panels).filter((p) => p.targets)) {
        // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a JS template
        expect(panel.datasource, `${file}: ${panel.title}`).toEqual({ type: "prometheus", uid: "${datasource}" });
      }
    }
    expect(uids.size).toBe(dashboards.length);
  });

  it("hold 12 or more PromQL panels in all", () => {
    const panels = loadDashboards().flatMap(({ dashboard }) =>
      allPanels(dashboard.panels).filter((p) => p.targets?.some((t) => t.expr)),
    );
    expect(panels.length).toBeGreaterThanOrEqual(12);
    for (const panel of panels) expect(["timeseries", "stat"], panel.title).toContain(panel.type);
  });

  it("have panel queries that promtool parses", () => {
    const queries = panelQueries();
    const rules = queries.map((q, n) => ({ record: `panel_${n}`, expr: withRanges(q.expr) }));
    // JSON is YAML: the throw-away rules file needs no YAML writer.
    const file = join(scratch, "panels.rules.yaml");
    writeFileSync(file, JSON.stringify({ groups: [{ name: "dashboard-panels", rules }] }, null, 2));
    const run = promtool(["check", "rules", file]);
    const legend = queries.map((q, n) => `panel_${n}: ${q.dashboard} / ${q.panel}`).join("\n");
    expect(run.status, `${run.output}\n${legend}`).toBe(0);
    expect(run.output).toContain(`SUCCESS: ${queries.length} rules found`);
  });

  it("have panel queries on metric families of the /metrics contract only", () => {
    const unknown = panelQueries().flatMap((q) =>
      metricFamilies(q.expr)
        .filter((name) => !KNOWN_FAMILIES.has(name))
        .map((name) => `${q.dashboard} / ${q.panel}: ${name}`),
    );
    expect(unknown).toEqual([]);
  });

  it("take rates over Grafana's ranges rather than fixed windows", () => {
    // Label values go first: a regex matcher such as code=~"[45].." holds brackets too.
    const ranges = (expr: string) => [...expr.replace(/"(?:[^"\\]|\\.)*"/g, '""').matchAll(/\[([^\]]+)\]/g)];
    const fixed = panelQueries().filter((q) =>
      ranges(q.expr).some((m) => !["$__rate_interval", "$__range"].includes(m[1] ?? "")),
    );
    expect(fixed.map((q) => `${q.dashboard} / ${q.panel}: ${q.expr}`)).toEqual([]);
  });
});
