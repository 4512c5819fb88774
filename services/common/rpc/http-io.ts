import { createHash } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { Code, type ConnectError } from "@connectrpc/connect";
import { FieldViolationSchema } from "../../../gen/converger/v1/options_pb.js";
import { HTTP_STATUS_HEADER } from "../access/context.js";
import { codeName, httpStatusForCode } from "./errors.js";

// A client that declares more than this is not drained, just answered and cut off.
const MAX_DRAIN_BYTES = 64 * 1024 * 1024;

/** A failure answered before any RPC runs, with its own HTTP status. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export class BodyTooLargeError extends HttpError {
  constructor(limit: number) {
    super(413, "resource_exhausted", `request body is larger than ${limit} bytes`);
  }
}

export function writeHttpError(res: ServerResponse, error: HttpError): void {
  writeJson(res, error.status, { code: error.code, message: error.message, details: [] });
}

/**
 * Reads a request body up to `limit` bytes. Past the limit it keeps reading
 * and discarding (up to a bound) so the 413 reaches the client instead of a
 * connection reset mid-upload.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > MAX_DRAIN_BYTES) return reject(new BodyTooLargeError(limit));
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
      else if (size > MAX_DRAIN_BYTES) {
        reject(new BodyTooLargeError(limit));
        req.destroy();
      }
    });
    req.on("end", () => (size > limit ? reject(new BodyTooLargeError(limit)) : resolve(Buffer.concat(chunks))));
    req.on("error", reject);
    req.on("close", () => {
      if (!req.complete) reject(new HttpError(499, "canceled", "the client closed the request"));
    });
  });
}

/** A strong ETag for a static body: its SHA-256, shortened (collisions are not a concern at 160 bits). */
export function etagOf(body: Buffer): string {
  return `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`;
}

export function writeJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent) return void res.end();
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(payload),
  });
  res.end(payload);
}

/** Connect-style error body `{code, message, details}` with the mapped HTTP status. */
export function writeError(res: ServerResponse, error: ConnectError, headers: Record<string, string> = {}): void {
  // A handler may name a more precise status than its code maps to (e.g. 413 for a full storage quota).
  const status = Number(error.metadata.get(HTTP_STATUS_HEADER)) || httpStatusForCode(error.code);
  const extra: Record<string, string> = { ...headers, ...limitHeadersOf(error) };
  if (error.code === Code.Unauthenticated) {
    // RFC 6750 §3: no error code when the request carried no credentials at all.
    const presented = res.req.headers.authorization !== undefined || res.req.headers["x-api-key"] !== undefined;
    extra["www-authenticate"] = presented
      ? 'Bearer realm="converger", error="invalid_token"'
      : 'Bearer realm="converger"';
  }
  const details = error.findDetails(FieldViolationSchema).map((v) => ({
    type: FieldViolationSchema.typeName,
    debug: { field: v.field, description: v.description },
  }));
  writeJson(res, status, { code: codeName(error.code), message: error.rawMessage, details }, extra);
}

const LIMIT_HEADERS = ["retry-after", "ratelimit", "ratelimit-policy"];

/** The rate-limit fields a 429 carries (common/rate-limits.ts puts them in the error's metadata). */
function limitHeadersOf(error: ConnectError): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const name of LIMIT_HEADERS) {
    const value = error.metadata.get(name);
    if (value !== null) headers[name] = value;
  }
  return headers;
}

// OAuth error codes by Connect code when the handler named none.
const OAUTH_FALLBACK: Partial<Record<Code, string>> = {
  [Code.InvalidArgument]: "invalid_request",
  [Code.Unauthenticated]: "invalid_client",
  [Code.PermissionDenied]: "unauthorized_client",
  [Code.Unavailable]: "temporarily_unavailable",
  [Code.ResourceExhausted]: "slow_down",
};

/** RFC 6749 §5.2 error body, for /auth/* routes. */
export function writeOAuthError(res: ServerResponse, error: ConnectError, headers: Record<string, string> = {}): void {
  const code = error.metadata.get("x-oauth-error") ?? OAUTH_FALLBACK[error.code] ?? "server_error";
  const status = code === "invalid_client" ? 401 : code === "server_error" ? 500 : httpStatusForCode(error.code);
  const limited = { ...headers, ...limitHeadersOf(error) };
  const extra = code === "invalid_client" ? { ...limited, "www-authenticate": 'Basic realm="converger"' } : limited;
  writeJson(res, status, { error: code, error_description: error.rawMessage }, extra);
}
