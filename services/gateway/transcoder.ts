import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { type DescField, type DescMessage, type JsonObject, type JsonValue, ScalarType } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, type Transport } from "@connectrpc/connect";
import { CLIENT_IP_HEADER, HTTP_STATUS_HEADER, kAuthenticated } from "../common/access/context.js";
import type { Logger } from "../common/obs/logger.js";
import { traceIdOf } from "../common/obs/trace.js";
import { invalidField } from "../common/rpc/errors.js";
import {
  BodyTooLargeError,
  HttpError,
  readBody,
  writeError,
  writeHttpError,
  writeJson,
  writeOAuthError,
} from "../common/rpc/http-io.js";
import { fromApiJson, toApiJson } from "../common/rpc/json.js";
import { rulesOf } from "../common/rpc/validation.js";
import type { RouteTable, RpcRoute } from "./route-table.js";
import type { Authenticate } from "./rpc-guard.js";

/** Request headers services see: credentials, correlation and the caller's address. */
const FORWARDED_HEADERS = [
  "authorization",
  "x-api-key",
  // A console session is an operator credential, checked against the page's origin.
  "cookie",
  "origin",
  "host",
  "traceparent",
  "tracestate",
  "user-agent",
];
/** Response headers a service may set for REST clients. */
const RETURNED_HEADERS = ["idempotent-replayed", "retry-after", "ratelimit", "ratelimit-policy", "location"];

export interface TranscoderOptions {
  routes: RouteTable;
  transportFor: (route: RpcRoute) => Transport;
  jsonBodyLimitBytes: number;
  /** Checks the caller's credentials before the body is read (common/access.ts createAuthenticator). */
  authenticate: Authenticate;
  log: Logger;
}

export interface RestRequest {
  req: IncomingMessage;
  res: ServerResponse;
  requestId: string;
  clientIp: string;
}

/**
 * The generic REST → RPC transcoder of design.md §1: path parameters, query
 * parameters, headers named by `(rules).from_header` and the JSON body become
 * the request message; the response message becomes public JSON.
 */
export function createTranscoder(options: TranscoderOptions) {
  const { routes, log } = options;

  return async function handle({ req, res, requestId, clientIp }: RestRequest): Promise<void> {
    const url = parseTarget(req.url);
    const verb = req.method ?? "GET";
    const started = performance.now();
    let oauthErrors = false;
    const reqLog = log.child({ request_id: requestId, trace_id: traceIdOf(req.headers.traceparent) });
    try {
      if (!url) throw new HttpError(400, "invalid_argument", "the request target must be a path starting with /");
      const match = routes.match(verb, url.pathname);
      if (!match) throw new ConnectError(`no route for ${verb} ${url.pathname}`, Code.NotFound);
      if ("allowed" in match) {
        res.setHeader("allow", match.allowed.join(", "));
        return writeJson(res, 405, { code: "method_not_allowed", message: `${verb} is not allowed here`, details: [] });
      }
      const { entry, params } = match;
      if (entry.kind === "raw") {
        const declared = Number(req.headers["content-length"] ?? 0);
        if (declared > entry.route.bodyLimitBytes) throw new BodyTooLargeError(entry.route.bodyLimitBytes);
        return await entry.route.handle({ req, res, params, requestId, clientIp });
      }
      oauthErrors = entry.oauthErrors;
      await callRpc(entry, params, url, req, res, requestId, clientIp);
    } catch (error) {
      // A body left unread (refused before it was needed) would be drained by Node at line rate: cut it off.
      if (hasUnreadBody(req)) res.setHeader("connection", "close");
      if (error instanceof HttpError) return writeHttpError(res, error);
      const connectError = ConnectError.from(error);
      if (connectError.code === Code.Internal || connectError.code === Code.Unknown) {
        reqLog.error({ err: connectError.cause ?? connectError }, "request failed");
      }
      if (oauthErrors) writeOAuthError(res, connectError, { "cache-control": "no-store" });
      else writeError(res, connectError);
    } finally {
      reqLog.info(
        {
          method: verb,
          path: url?.pathname ?? "(invalid)",
          status: res.statusCode,
          ms: Math.round(performance.now() - started),
        },
        "request",
      );
    }
  };

  async function callRpc(
    route: RpcRoute,
    params: Record<string, string>,
    url: Target,
    req: IncomingMessage,
    res: ServerResponse,
    requestId: string,
    clientIp: string,
  ): Promise<void> {
    const header = new Headers({ "x-request-id": requestId, [CLIENT_IP_HEADER]: clientIp });
    for (const name of FORWARDED_HEADERS) {
      const value = req.headers[name];
      if (typeof value === "string") header.set(name, value);
    }
    const authority = req.headers[":authority"];
    if (!header.has("host") && typeof authority === "string") header.set("host", authority);
    // Credentials first: an anonymous caller learns nothing about its body and costs no parse.
    const principal = await options.authenticate(route.method, header);
    const input = route.method.input;
    const json = route.body === "*" ? await readJsonBody(req, options.jsonBodyLimitBytes) : {};
    if (route.body !== "*") mergeQuery(input, json, url.searchParams);
    mergeHeaders(input, json, req);
    Object.assign(json, params);
    const message = fromApiJson(input, json);

    const abort = new AbortController();
    // Only a client that went away mid-call cancels it (abort() on every close costs a DOMException).
    res.on("close", () => {
      if (!res.writableFinished) abort.abort();
    });
    const response = await options.transportFor(route).unary(
      route.method as never,
      abort.signal,
      undefined,
      header,
      message as never,
      // Only an in-process service reads it; gRPC never sends context values.
      createContextValues().set(kAuthenticated, principal),
    );
    const status = Number(response.header.get(HTTP_STATUS_HEADER)) || route.successStatus;
    const returned: Record<string, string> = {};
    for (const name of RETURNED_HEADERS) {
      const value = response.header.get(name);
      if (value !== null) returned[name] = value;
    }
    writeJson(res, status, toApiJson(route.method.output, response.message as never), returned);
  }
}

function hasUnreadBody(req: IncomingMessage): boolean {
  const declared = req.headers["content-length"];
  const sent = req.headers["transfer-encoding"] !== undefined || (declared !== undefined && declared !== "0");
  return sent && !req.readableEnded;
}

interface Target {
  pathname: string;
  searchParams: URLSearchParams;
}

/**
 * Splits an origin-form request target by hand: `new URL(target, base)` throws
 * on targets such as `//`, `//[` or `/\\`, and resolves `//host/…` to another
 * host. Anything but a path (absolute-form, `*`) is refused.
 */
function parseTarget(target: string | undefined): Target | undefined {
  if (!target?.startsWith("/")) return undefined;
  const at = target.indexOf("?");
  const pathname = at < 0 ? target : target.slice(0, at);
  return { pathname, searchParams: new URLSearchParams(at < 0 ? "" : target.slice(at + 1)) };
}

async function readJsonBody(req: IncomingMessage, limit: number): Promise<JsonObject> {
  const encoding = (req.headers["content-encoding"] ?? "identity").trim().toLowerCase();
  // RFC 9110 §15.5.16: a content coding we do not take is 415 (and nothing is inflated).
  if (encoding !== "identity") throw new HttpError(415, "invalid_argument", "Content-Encoding is not supported here");
  const body = await readBody(req, limit);
  if (body.length === 0) return {};
  const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
  if (type !== "application/json") {
    throw new HttpError(415, "invalid_argument", "Content-Type must be application/json");
  }
  let parsed: JsonValue;
  try {
    parsed = JSON.parse(body.toString("utf8")) as JsonValue;
  } catch {
    throw invalidField("body", "is not valid JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw invalidField("body", "must be a JSON object");
  }
  return parsed;
}

/** Query parameters named like request fields fill them; repeated ones fill lists. */
function mergeQuery(input: DescMessage, json: JsonObject, query: URLSearchParams): void {
  for (const field of input.fields) {
    const values = query.getAll(field.name);
    if (values.length === 0 || field.name in json) continue;
    const value = values[values.length - 1] as string;
    json[field.name] = field.fieldKind === "list" ? values : isBool(field) ? queryBool(field.name, value) : value;
  }
}

const isBool = (field: DescField) => field.fieldKind === "scalar" && field.scalar === ScalarType.BOOL;

/** `?all=true` (and `1`, `false`, `0`, or a bare `?all`): query strings have no JSON booleans. */
function queryBool(name: string, value: string): boolean {
  if (value === "true" || value === "1" || value === "") return true;
  if (value === "false" || value === "0") return false;
  throw invalidField(name, "must be true or false");
}

function mergeHeaders(input: DescMessage, json: JsonObject, req: IncomingMessage): void {
  for (const field of input.fields) {
    for (const name of rulesOf(field)?.fromHeader ?? []) {
      const value = req.headers[name.toLowerCase()];
      if (typeof value === "string" && value !== "") {
        json[field.name] = value;
        break;
      }
    }
  }
}

export function newRequestId(incoming: string | string[] | undefined): string {
  return typeof incoming === "string" && /^[\w.:-]{1,128}$/.test(incoming) ? incoming : randomUUID();
}
