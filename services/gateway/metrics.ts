import type { IncomingMessage, ServerResponse } from "node:http";
import type { DescService } from "@bufbuild/protobuf";
import { Counter, Histogram } from "prom-client";
import { DURATION_BUCKETS, metrics } from "../common/obs/metrics.js";
import type { RouteTable } from "./route-table.js";

const httpRequestsTotal = new Counter({
  name: "converger_http_requests_total",
  help: "Gateway HTTP requests by route template (or unmatched), method and status.",
  labelNames: ["route", "method", "code"] as const,
  registers: [metrics],
});

const httpRequestDuration = new Histogram({
  name: "converger_http_request_duration_seconds",
  help: "Gateway HTTP request duration, from arrival to the end of the answer.",
  labelNames: ["route", "method"] as const,
  buckets: DURATION_BUCKETS,
  registers: [metrics],
});

const UNMATCHED = "unmatched";
// A method is a client's choice: anything outside these would be a label an attacker picks.
const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);
// nginx's code for a client that went away before the answer began.
const CLIENT_CLOSED = "499";

const kStarted = Symbol("converger.http.started");
type Timed = ServerResponse & { [kStarted]?: number };

/**
 * Measures every request of the gateway port under its route template: a
 * Connect/gRPC path `/{service}/{method}` of a known RPC, the template of the
 * REST or raw route it matched, or `unmatched`, so no path a client makes up
 * becomes a series.
 */
export function createHttpMetrics(services: DescService[], table: RouteTable) {
  const rpcPaths = new Set(services.flatMap((s) => s.methods.map((m) => `/${s.typeName}/${m.name}`)));

  function routeOf(method: string, path: string): string {
    if (rpcPaths.has(path)) return path;
    let match = table.match(method, path);
    // A known path asked with another method (a preflight, a 405) still counts under its template.
    if (match && "allowed" in match) match = table.match(match.allowed[0] as string, path);
    return match && "entry" in match ? match.entry.template : UNMATCHED;
  }

  // One listener for every response: nothing is allocated per request but the labels.
  function onClose(this: Timed & { req: IncomingMessage }): void {
    const started = this[kStarted] as number;
    const req = this.req;
    const method = METHODS.has(req.method ?? "") ? (req.method as string) : "other";
    const route = routeOf(method, (req.url ?? "").split("?", 1)[0] as string);
    const code = this.headersSent ? String(this.statusCode) : CLIENT_CLOSED;
    httpRequestsTotal.inc({ route, method, code });
    httpRequestDuration.observe({ route, method }, (performance.now() - started) / 1000);
  }

  return function track(res: ServerResponse): void {
    (res as Timed)[kStarted] = performance.now();
    res.once("close", onClose);
  };
}
