import type { IncomingMessage, ServerResponse } from "node:http";
import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus, errorToJson } from "@connectrpc/connect/protocol-connect";
import { CLIENT_IP_HEADER, type Principal } from "../common/access/context.js";
import { INTERNAL_HEADER } from "../common/access/internal.js";

/** Authenticates a call from its headers alone (createAuthenticator in common/access.ts). */
export type Authenticate = (method: DescMethod, header: Headers) => Promise<Principal>;

// A console session (cookie) is an operator credential, checked against the page's origin (origin, host).
const CREDENTIAL_HEADERS = [
  "authorization",
  "x-api-key",
  INTERNAL_HEADER,
  CLIENT_IP_HEADER,
  "cookie",
  "origin",
  "host",
];

/** The headers authentication reads, copied from a Node request (HTTP/2 pseudo-headers left out). */
function credentialHeaders(req: IncomingMessage): Headers {
  const header = new Headers();
  for (const name of CREDENTIAL_HEADERS) {
    const value = req.headers[name];
    if (typeof value === "string") header.set(name, value);
  }
  const authority = req.headers[":authority"];
  if (!header.has("host") && typeof authority === "string") header.set("host", authority);
  return header;
}

/**
 * connect-node reads and decompresses a unary body before any interceptor
 * runs, so an anonymous caller could make us inflate a gzip bomb before its
 * 401. This guard authenticates Connect, gRPC and gRPC-Web calls from their
 * headers first, refuses a body declared over the cap, and answers either in
 * the caller's protocol without touching the body. Resolves with the caller
 * when the call may go on.
 */
export function createRpcGuard(authenticate: Authenticate, bodyLimitBytes: number) {
  return async function admit(
    method: DescMethod,
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<Principal | undefined> {
    let principal: Principal;
    try {
      principal = await authenticate(method, credentialHeaders(req));
    } catch (error) {
      writeRpcError(req, res, ConnectError.from(error));
      return undefined;
    }
    // A declared length over the cap is refused unread; a compressed body is bounded by readMaxBytes.
    if (Number(req.headers["content-length"] ?? 0) > bodyLimitBytes) {
      const error = new ConnectError(`request body is larger than ${bodyLimitBytes} bytes`, Code.ResourceExhausted);
      writeRpcError(req, res, error, 413);
      return undefined;
    }
    return principal;
  };
}

/**
 * An error answer in the request's protocol: gRPC and gRPC-Web trailers-only,
 * Connect unary or streaming. `connectStatus` overrides the HTTP status a
 * Connect unary answer gets from its code (413 for a body over the cap).
 */
export function writeRpcError(
  req: IncomingMessage,
  res: ServerResponse,
  error: ConnectError,
  connectStatus?: number,
): void {
  if (res.headersSent) return void res.end();
  const type = (req.headers["content-type"] ?? "").toLowerCase();
  const headers: Record<string, string> = {};
  error.metadata.forEach((value, name) => {
    headers[name] = value;
  });
  // The unread body must not be taken for the next request on this connection.
  if (req.httpVersionMajor === 1) headers.connection = "close";
  if (type.startsWith("application/grpc")) {
    const status = { "grpc-status": String(error.code), "grpc-message": encodeURIComponent(error.rawMessage) };
    const contentType = type.split(";")[0] as string;
    // gRPC-Web carries the status in the headers (trailers-only); gRPC over HTTP/2 in real trailers.
    if (type.startsWith("application/grpc-web")) {
      res.writeHead(200, { ...headers, "content-type": contentType, ...status });
      return void res.end();
    }
    res.writeHead(200, { ...headers, "content-type": contentType });
    res.addTrailers(status);
    return void res.end();
  }
  const json = errorToJson(error, undefined);
  if (type.startsWith("application/connect+")) {
    const payload = Buffer.from(JSON.stringify({ error: json }));
    const envelope = Buffer.alloc(5);
    envelope.writeUInt8(0b10, 0); // end-of-stream flag
    envelope.writeUInt32BE(payload.length, 1);
    res.writeHead(200, { ...headers, "content-type": type.split(";")[0] as string });
    return void res.end(Buffer.concat([envelope, payload]));
  }
  const payload = JSON.stringify(json);
  res.writeHead(connectStatus ?? codeToHttpStatus(error.code), {
    ...headers,
    "content-type": "application/json",
    "content-length": String(Buffer.byteLength(payload)),
  });
  res.end(payload);
}
