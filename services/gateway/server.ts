import type { IncomingMessage, ServerResponse } from "node:http";
import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter, Transport } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { clientAddress, createAddressMatcher } from "../common/cidr.js";
import { CLIENT_IP_HEADER } from "../common/context.js";
import type { Logger } from "../common/logger.js";
import type { RawRoute } from "../common/service.js";
import { traceparentOf } from "../common/trace.js";
import { buildRouteTable } from "./route-table.js";
import { createTranscoder, newRequestId } from "./transcoder.js";

export interface GatewayOptions {
  /** Every RPC service reachable through this gateway, with the transport that reaches it. */
  services: { desc: DescService; transport: Transport }[];
  /** Connect/gRPC/gRPC-Web registrations served on the gateway port. */
  routes: (router: ConnectRouter) => void;
  rawRoutes: RawRoute[];
  trustedProxies: string[];
  jsonBodyLimitBytes: number;
  log: Logger;
}

/**
 * The front door on PORT: Connect, gRPC and gRPC-Web for RPC paths, and the
 * REST transcoder (plus raw routes) as the fallback for everything else.
 * Every response carries X-Request-Id.
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
    log: options.log,
  });
  const isTrustedProxy = createAddressMatcher(options.trustedProxies);
  const rpc = connectNodeAdapter({
    routes: options.routes,
    fallback: (req, res) => {
      void transcode({
        req: req as IncomingMessage,
        res: res as ServerResponse,
        requestId: req.headers["x-request-id"] as string,
        clientIp: req.headers[CLIENT_IP_HEADER] as string,
      });
    },
  });
  return (req: IncomingMessage, res: ServerResponse) => {
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
    res.setHeader("x-request-id", requestId);
    rpc(req, res);
  };
}

/**
 * The internal gRPC port. The caller's address header is believed only from
 * our own gateways (loopback or TRUSTED_PROXIES); anyone else is taken at
 * their socket address, so the admin allowlist cannot be forged here.
 */
export function createInternalHandler(routes: (router: ConnectRouter) => void, trustedProxies: string[]) {
  const rpc = connectNodeAdapter({ routes });
  const isGateway = createAddressMatcher(["127.0.0.0/8", "::1/128", ...trustedProxies]);
  return (req: IncomingMessage, res: ServerResponse) => {
    const peer = req.socket.remoteAddress ?? "";
    if (!isGateway(peer) || typeof req.headers[CLIENT_IP_HEADER] !== "string") req.headers[CLIENT_IP_HEADER] = peer;
    const requestId = newRequestId(req.headers["x-request-id"]);
    req.headers["x-request-id"] = requestId;
    res.setHeader("x-request-id", requestId);
    rpc(req, res);
  };
}
