import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const DASHBOARDS = "k8s/monitoring/grafana";

export interface Panel {
  title?: string;
  type?: string;
  datasource?: { type?: string; uid?: string };
  targets?: { expr?: string; legendFormat?: string }[];
  panels?: Panel[];
}
export interface Dashboard {
  title: string;
  uid: string;
  schemaVersion: number;
  panels: Panel[];
  templating?: { list?: { name: string; type: string; query?: string }[] };
}
export interface PanelQuery {
  dashboard: string;
  panel: string;
  expr: string;
}

export function loadDashboards(): { file: string; dashboard: Dashboard }[] {
  return readdirSync(DASHBOARDS)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((file) => ({ file, dashboard: JSON.parse(readFileSync(join(DASHBOARDS, file), "utf8")) as Dashboard }));
}

/** Panels with their rows' panels, as Grafana nests collapsed rows. */
export function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

/** Every PromQL query of every dashboard, with where it comes from. */
export function panelQueries(): PanelQuery[] {
  return loadDashboards().flatMap(({ file, dashboard }) =>
    allPanels(dashboard.panels).flatMap((p) =>
      (p.targets ?? []).map((t) => ({ dashboard: file, panel: p.title ?? "(untitled)", expr: t.expr ?? "" })),
    ),
  );
}

/** A query with Grafana's built-in range variables replaced by the given durations. */
export function withGrafanaRanges(expr: string, ranges: Record<string, string>): string {
  return expr.replace(/\$\{?(__rate_interval|__interval|__range)\}?/g, (_, name: string) => ranges[name] ?? name);
}
