import type { IncomingMessage, ServerResponse } from "node:http";

const ALLOWED_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE";

/** Request headers browsers may send: credentials, REST, Connect, gRPC-Web and tus headers, tracing. */
const ALLOWED_HEADERS = [
  "authorization",
  "x-api-key",
  "content-type",
  "idempotency-key",
  "x-idempotency-key",
  "x-tenant-id",
  "x-request-id",
  "traceparent",
  "tracestate",
  "range",
  "connect-protocol-version",
  "connect-timeout-ms",
  "connect-content-encoding",
  "connect-accept-encoding",
  "grpc-timeout",
  "grpc-accept-encoding",
  "grpc-encoding",
  "x-grpc-web",
  "x-user-agent",
  "tus-resumable",
  "upload-length",
  "upload-offset",
  "upload-metadata",
  "upload-defer-length",
  "upload-checksum",
].join(", ");

/** Response headers scripts may read besides the CORS-safelisted ones. */
const EXPOSED_HEADERS = [
  "x-request-id",
  "www-authenticate",
  "idempotent-replayed",
  "retry-after",
  "ratelimit",
  "ratelimit-policy",
  "location",
  "content-disposition",
  "content-range",
  "accept-ranges",
  "content-encoding",
  "connect-content-encoding",
  "connect-accept-encoding",
  "grpc-status",
  "grpc-message",
  "grpc-status-details-bin",
  "grpc-encoding",
  "tus-resumable",
  "tus-version",
  "tus-extension",
  "tus-max-size",
  "tus-checksum-algorithm",
  "upload-offset",
  "upload-length",
  "upload-metadata",
  "upload-expires",
].join(", ");

// Browsers cap it (Chromium at 2 h); 10 min spares repeated preflights without pinning a policy for long.
const PREFLIGHT_MAX_AGE_S = 600;

/**
 * CORS on the gateway (design.md §8, CORS_ORIGINS). Only listed origins, as
 * exact serialized origins, are granted: a preflight from one is answered 204
 * with the methods and headers the API uses; its actual responses carry its
 * origin in Access-Control-Allow-Origin. Never `*`, and never
 * Access-Control-Allow-Credentials: the API's credentials are headers a page
 * sets itself, and the admin console's session cookie must not ride along on
 * another origin's call. Any other preflight is answered 403 without grants,
 * before routing and authentication (a preflight carries no credential) and
 * without counting against rate limits; it reads nothing, echoes nothing, and
 * costs one constant answer.
 */
export function createCors(origins: readonly string[]) {
  const allowed = new Set(origins);
  const enabled = allowed.size > 0;

  /** Sets what the response owes the request's origin; true when it was a preflight, already answered. */
  return function applyCors(req: IncomingMessage, res: ServerResponse): boolean {
    const origin = req.headers.origin;
    // With origins listed, every answer depends on Origin: caches must key on it.
    if (enabled) res.setHeader("vary", "Origin");
    const granted = typeof origin === "string" && allowed.has(origin);
    if (req.method === "OPTIONS" && origin !== undefined && req.headers["access-control-request-method"]) {
      answerPreflight(req, res, granted ? origin : undefined, enabled);
      return true;
    }
    if (granted) {
      res.setHeader("access-control-allow-origin", origin);
      res.setHeader("access-control-expose-headers", EXPOSED_HEADERS);
    }
    return false;
  };
}

function answerPreflight(req: IncomingMessage, res: ServerResponse, origin: string | undefined, enabled: boolean) {
  // A body sent with a preflight is never read: it must not be taken for the next request.
  const body = req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"] ?? 0) > 0;
  if (body && req.httpVersionMajor === 1) res.setHeader("connection", "close");
  if (!origin) {
    const payload = JSON.stringify({ code: "permission_denied", message: "origin not allowed", details: [] });
    const vary = enabled ? { vary: "Origin" } : {};
    res.writeHead(403, { ...vary, "content-type": "application/json", "content-length": Buffer.byteLength(payload) });
    return void res.end(payload);
  }
  res.writeHead(204, {
    vary: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
    "access-control-allow-origin": origin,
    "access-control-allow-methods": ALLOWED_METHODS,
    "access-control-allow-headers": ALLOWED_HEADERS,
    "access-control-max-age": String(PREFLIGHT_MAX_AGE_S),
  });
  res.end();
}
