import type { Bus } from "../common/events/bus.js";
import { metrics } from "../common/obs/metrics.js";
import { writeJson } from "../common/rpc/http-io.js";
import type { RawRoute, ServiceModule } from "../common/service.js";
import { sdkScriptRoute } from "./sdk-route.js";

/**
 * /healthz (listeners up, migrations done), /readyz (engines reachable),
 * /metrics (Prometheus) and the browser SDK at /sdk/converger.js.
 */
export function opsRoutes(options: {
  modules: ServiceModule[];
  bus: Bus;
  isListening: () => boolean;
  metricsAllowed: (clientIp: string) => boolean;
}): RawRoute[] {
  return [
    {
      method: "GET",
      path: "/healthz",
      bodyLimitBytes: 0,
      handle({ res }) {
        // Migrations run before any listener opens, so "listening" implies both.
        const ok = options.isListening();
        writeJson(res, ok ? 200 : 503, { status: ok ? "ok" : "starting" });
      },
    },
    {
      method: "GET",
      path: "/metrics",
      bodyLimitBytes: 0,
      async handle({ res, clientIp }) {
        // Operators' network only (ADMIN_ALLOWED_IPS), like the admin API: metrics name tenants' channels.
        if (!options.metricsAllowed(clientIp)) return writeJson(res, 403, { code: "permission_denied" });
        res.writeHead(200, { "content-type": metrics.contentType }).end(await metrics.metrics());
      },
    },
    {
      method: "GET",
      path: "/readyz",
      bodyLimitBytes: 0,
      async handle({ res }) {
        const checks: Record<string, string> = {};
        let ok = options.isListening();
        const engines: [string, () => Promise<void>][] = [
          ...options.modules.map((m): [string, () => Promise<void>] => [m.name, () => m.ready()]),
          ["bus", () => options.bus.ready()],
        ];
        for (const [name, ready] of engines) {
          try {
            await withTimeout(ready(), 2000);
            checks[name] = "ok";
          } catch (error) {
            ok = false;
            checks[name] = (error as Error).message || "unavailable";
          }
        }
        writeJson(res, ok ? 200 : 503, { status: ok ? "ok" : "unavailable", checks });
      },
    },
    sdkScriptRoute(),
  ];
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms).unref()),
  ]);
}
