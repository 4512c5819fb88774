import type { IncomingMessage, ServerResponse } from "node:http";
import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter, Transport } from "@connectrpc/connect";
import { clientAddress, createAddressMatcher } from "../common/access/cidr.js";
import { CLIENT_IP_HEADER } from "../common/access/context.js";
import { INTERNAL_HEADER } from "../common/access/internal.js";
import type { Logger } from "../common/obs/logger.js";
import { traceparentOf } from "../common/obs/trace.js";
import type { RawRoute } from "../common/service.js";
import { createCors } from "./cors.js";
import { createHttpMetrics } from "./metrics.js";
import { buildRouteTable } from "./route-table.js";
import { createRpcAdapter } from "./rpc-adapter.js";
import type { Authenticate } from "./rpc-guard.js";
import { createTranscoder, newRequestId } from "./transcoder.js";

export interface GatewayOptions {
  /** Every RPC service reachable through this gateway, with the transport that reaches it. */
  services: { desc: DescService; transport: Transport }[];
  /** Connect/gRPC/gRPC-Web registrations served on the gateway port. */
  routes: (router: ConnectRouter) => void;
  rawRoutes: RawRoute[];
  trustedProxies: string[];
  jsonBodyLimitBytes: number;
  /** Checks a caller's credentials before any body is read. */
  authenticate: Authenticate;
  /** ADMIN_ALLOWED_IPS: who may reach anything under /admin (else 403, before anything else). */
  adminAllowed: (address: string) => boolean;
  /** CORS_ORIGINS: browser origins granted cross-origin calls (cors.ts). */
  corsOrigins: readonly string[];
  /** The port speaks TLS: answers tell browsers to come back over https only (HSTS). */
  strictTransportSecurity?: boolean;
  log: Logger;
}

// One year, the least HSTS preload lists take: browsers forget a shorter pin between visits.
const HSTS = "max-age=31536000";

/**
 * The front door on PORT: Connect, gRPC and gRPC-Web for RPC paths, and the
 * REST transcoder (plus raw routes) as the fallback for everything else.
 * Every response carries X-Request-Id; CORS preflights are answered here,
 * before any route, credential or rate limit.
 */
export function createGatewayHandler(options: GatewayOptions) {
  const transports = new Map(options.services.map((s) => [s.desc.typeName, s.transport]));
  const table = buildRouteTable(
    options.services.map((s) => s.desc),
    options.rawRoutes,
  );
  const transcode = createTranscoder({
    routes: table,
    transportFor: (route) => transports.get(route.service.typeName) as Transport,
    jsonBodyLimitBytes: options.jsonBodyLimitBytes,
    authenticate: options.authenticate,
    log: options.log,
  });
  const track = createHttpMetrics(
    options.services.map((s) => s.desc),
    table,
  );
  const isTrustedProxy = createAddressMatcher(options.trustedProxies);
  const applyCors = createCors(options.corsOrigins);
  const hsts = options.strictTransportSecurity === true;
  const fail = failureBoundary(options.log);
  const rpc = createRpcAdapter({
    routes: options.routes,
    readMaxBytes: options.jsonBodyLimitBytes,
    authenticate: options.authenticate,
    fail,
    fallback: (req, res) => {
      transcode({
        req,
        res,
        requestId: req.headers["x-request-id"] as string,
        clientIp: req.headers[CLIENT_IP_HEADER] as string,
      }).catch((error: unknown) => fail(req, res, error));
    },
  });
  return (req: IncomingMessage, res: ServerResponse) => {
    track(res);
    try {
      const requestId = newRequestId(req.headers["x-request-id"]);
      const forwardedFor = req.headers["x-forwarded-for"];
      // Never trust a client-sent address header: recompute it on every request.
      req.headers[CLIENT_IP_HEADER] = clientAddress(
        req.socket.remoteAddress ?? "",
        Array.isArray(forwardedFor) ? forwardedFor.join(",") : forwardedFor,
        isTrustedProxy,
      );
      req.headers["x-request-id"] = requestId;
      req.headers.traceparent = traceparentOf(req.headers.traceparent);
      // Only our own services speak with the internal token, and never through the public port.
      delete req.headers[INTERNAL_HEADER];
      res.setHeader("x-request-id", requestId);
      if (hsts) res.setHeader("strict-transport-security", HSTS);
      if (answerAdminGate(req, res, options.adminAllowed)) return;
      if (applyCors(req, res)) return;
      rpc(req, res);
    } catch (error) {
      fail(req, res, error);
    }
  };
}

// Any spelling of /admin a router might still map there: doubled slashes, any case.
const ADMIN_PATH = /^[/\\]+admin([/\\]|$)/i;

function decodedPath(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

/**
 * Everything under /admin (console pages, assets, the operator REST API) is
 * 403 outside ADMIN_ALLOWED_IPS, whatever the path, method or credential.
 * From inside, `/` leads to the console. True when it answered.
 */
function answerAdminGate(
  req: IncomingMessage,
  res: ServerResponse,
  adminAllowed: (address: string) => boolean,
): boolean {
  const path = (req.url ?? "").split("?")[0] as string;
  const allowed = adminAllowed(req.headers[CLIENT_IP_HEADER] as string);
  if (path === "/" && allowed && (req.method === "GET" || req.method === "HEAD")) {
    res.writeHead(303, { location: "/admin/", "content-length": "0" }).end();
    return true;
  }
  if (allowed || !ADMIN_PATH.test(decodedPath(path))) return false;
  const payload = JSON.stringify({
    code: "permission_denied",
    message: "admin access is not allowed from this address",
    details: [],
  });
  res.writeHead(403, { "content-type": "application/json", "content-length": Buffer.byteLength(payload) }).end(payload);
  return true;
}

/**
 * The last line of every request: whatever escaped its handler is logged once
 * with the request id and answered 500 (or the connection is cut when the
 * answer had begun). Nothing a client sends reaches an unhandled rejection.
 */
function failureBoundary(log: Logger) {
  return (req: IncomingMessage, res: ServerResponse, error: unknown) => {
    const requestId = req.headers["x-request-id"];
    log.error({ err: error, request_id: requestId, method: req.method }, "request failed outside its handler");
    if (res.headersSent) return void res.destroy();
    const payload = JSON.stringify({ code: "internal", message: "internal error", details: [] });
    res.writeHead(500, { "content-type": "application/json", "content-length": Buffer.byteLength(payload) });
    res.end(payload);
  };
}

/**
 * The internal gRPC port. The caller's address header is believed only from
 * our own gateways (loopback or TRUSTED_PROXIES); anyone else is taken at
 * their socket address, so the admin allowlist cannot be forged here.
 */
export function createInternalHandler(options: {
  routes: (router: ConnectRouter) => void;
  trustedProxies: string[];
  bodyLimitBytes: number;
  authenticate: Authenticate;
  log: Logger;
}) {
  const fail = failureBoundary(options.log);
  const rpc = createRpcAdapter({
    routes: options.routes,
    readMaxBytes: options.bodyLimitBytes,
    authenticate: options.authenticate,
    fail,
  });
  const isGateway = createAddressMatcher(["127.0.0.0/8", "::1/128", ...options.trustedProxies]);
  return (req: IncomingMessage, res: ServerResponse) => {
    try {
      const peer = req.socket.remoteAddress ?? "";
      if (!isGateway(peer) || typeof req.headers[CLIENT_IP_HEADER] !== "string") req.headers[CLIENT_IP_HEADER] = peer;
      const requestId = newRequestId(req.headers["x-request-id"]);
      req.headers["x-request-id"] = requestId;
      res.setHeader("x-request-id", requestId);
      rpc(req, res);
    } catch (error) {
      fail(req, res, error);
    }
  };
}
