import type uWS from "uWebSockets.js";
import { metrics } from "../common/obs/metrics.js";

const JSON_TYPE = "application/json";

/**
 * The plain HTTP routes of WS_PORT: /healthz and /metrics, which edge-only
 * processes (no gateway) serve here. /metrics answers only addresses in
 * ADMIN_ALLOWED_IPS, as on the gateway.
 */
export function edgeOpsRoutes(
  app: uWS.TemplatedApp,
  options: {
    closing: () => boolean;
    sockets: () => number;
    /** The caller's address as the edge computes it (X-Forwarded-For only from TRUSTED_PROXIES). */
    clientIp: (res: uWS.HttpResponse, req: uWS.HttpRequest) => string;
    metricsAllowed: (clientIp: string) => boolean;
  },
): void {
  // Liveness for edge-only processes, which have no gateway.
  app.get("/healthz", (res) => {
    const closing = options.closing();
    res.writeStatus(closing ? "503 Service Unavailable" : "200 OK").writeHeader("content-type", JSON_TYPE);
    res.end(JSON.stringify({ status: closing ? "closing" : "ok", sockets: options.sockets() }));
  });
  app.get("/metrics", (res, req) => {
    // Headers are readable only now, before the first await.
    if (!options.metricsAllowed(options.clientIp(res, req))) {
      res.writeStatus("403 Forbidden").writeHeader("content-type", JSON_TYPE);
      return void res.end(JSON.stringify({ code: "permission_denied" }));
    }
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    metrics.metrics().then(
      (text) => {
        if (aborted) return;
        res.cork(() => res.writeStatus("200 OK").writeHeader("content-type", metrics.contentType).end(text));
      },
      () => {
        if (aborted) return;
        res.cork(() => res.writeStatus("500 Internal Server Error").end());
      },
    );
  });
}
