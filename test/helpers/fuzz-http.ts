import type { DescMessage } from "@bufbuild/protobuf";
import { createRouterTransport } from "@connectrpc/connect";
import fc from "fast-check";
import type { Bus } from "../../services/common/events/bus.js";
import { buildRouteTable, opsRoutes, type RouteEntry } from "../../services/gateway/index.js";
import { REGISTRY } from "../../services/host/registry.js";
import {
  anyJson,
  bodyFor,
  hostileString,
  nearValidMessage,
  paramValue,
  queryFor,
  type RealIds,
  realIdFor,
  targetedQuery,
} from "./fuzz-arbitraries.js";
import { type FuzzReport, settle } from "./fuzz-report.js";
import { describeRequest, type RawRequest, type SendOptions, send } from "./raw-http.js";

export const REQUEST_TIMEOUT_MS = 5000;

/** The gateway's route table, built as the gateway builds it (raw routes only need their paths here). */
export function gatewayRoutes() {
  const transport = createRouterTransport(() => undefined);
  const raw = [
    ...opsRoutes({ modules: [], bus: {} as Bus, isListening: () => true, metricsAllowed: () => true }),
    ...Object.values(REGISTRY).flatMap((r) => r?.rawRoutes?.(transport) ?? []),
  ];
  return buildRouteTable(
    Object.values(REGISTRY).flatMap((r) => r?.services ?? []),
    raw,
  );
}

export function templateOf(entry: RouteEntry): string {
  return `${entry.verb} /${entry.segments.map((s) => ("literal" in s ? s.literal : `{${s.param}}`)).join("/")}`;
}

/** Credentials as header lines: real ones, none, and wrong ones. */
export function credentialArb(real: {
  key: string;
  admin: string;
  clientToken: string;
}): fc.Arbitrary<[string, string][]> {
  return fc.constantFrom<[string, string][]>(
    [],
    [["X-Api-Key", real.key]],
    [["Authorization", `Bearer ${real.admin}`]],
    [["Authorization", `Bearer ${real.clientToken}`]],
    [
      ["X-Api-Key", real.key],
      ["Authorization", `Bearer ${real.admin}`],
    ],
    [["X-Api-Key", "cvk_wrong"]],
    [["X-Api-Key", `${real.key}x`]],
    [["Authorization", "Bearer not.a.jwt"]],
    [["Authorization", `Bearer ${real.clientToken.slice(0, -2)}xx`]],
    [["Authorization", "Basic Zm9vOmJhcg=="]],
    [["Authorization", "Basic %%%"]],
    [["Authorization", "Bearer"]],
    [["Authorization", `Bearer ${"a".repeat(6000)}`]],
  );
}

const CONTENT_TYPES = [
  "application/json",
  "application/json",
  "application/json",
  "application/json; charset=latin1",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=x",
  "text/plain",
  "application/proto",
  "application/octet-stream",
  "",
];

/** Headers services read (idempotency, tenant, signatures, tus), with hostile values. */
const extraHeaders: fc.Arbitrary<[string, string][]> = fc
  .subarray([
    "Idempotency-Key",
    "X-Idempotency-Key",
    "X-Tenant-ID",
    "X-Hub-Signature-256",
    "Tus-Resumable",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Metadata",
    "Range",
    "X-Request-Id",
  ])
  .chain((names) => fc.tuple(...names.map((n) => fc.tuple(fc.constant(n), hostileString.map(headerSafe)))));

/** Header values cannot carry CR/LF (that is request smuggling, tested separately); keep the rest. */
export function headerSafe(value: string): string {
  return value.replace(/[\r\n]/g, "").slice(0, 8000);
}

const RAW_QUERY_KEYS = ["hub.mode", "hub.verify_token", "hub.challenge", "grant_type", "x"];

/** What the fuzz may present: every credential kind (hostile mode) and the right one for a route (near-valid mode). */
export interface FuzzCredentials {
  any: fc.Arbitrary<[string, string][]>;
  key: string;
  admin: string;
  clientToken: string;
}

/**
 * One request to a route of the table. Half are hostile everywhere (params,
 * query, body, content type, credentials); half are what a real client would
 * send with a few fields hostile, so that they get past validation and
 * authentication to the handlers and the database.
 */
export function routeRequestArb(entry: RouteEntry, ids: RealIds, credentials: FuzzCredentials) {
  return fc.oneof(
    { weight: 1, arbitrary: hostileRouteRequest(entry, ids, credentials.any) },
    { weight: 3, arbitrary: nearValidRouteRequest(entry, ids, credentials) },
  );
}

function pathOf(entry: RouteEntry, params: string[]): string {
  let i = 0;
  return `/${entry.segments.map((s) => ("literal" in s ? s.literal : params[i++])).join("/")}`;
}

function hostileRouteRequest(entry: RouteEntry, ids: RealIds, credentials: fc.Arbitrary<[string, string][]>) {
  const params = entry.segments.filter((s) => "param" in s);
  const input: DescMessage | undefined = entry.kind === "rpc" ? entry.method.input : undefined;
  return fc
    .record({
      method: fc.oneof(
        { weight: 8, arbitrary: fc.constant(entry.verb) },
        { weight: 1, arbitrary: fc.constantFrom("GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "OPTIONS") },
      ),
      params: fc.tuple(...params.map(() => paramValue(Object.values(ids)))),
      query: queryFor(input ? input.fields.map((f) => f.name) : RAW_QUERY_KEYS),
      body: input
        ? bodyFor(input)
        : fc.oneof(
            anyJson.map((v) => JSON.stringify(v) ?? ""),
            fc.uint8Array({ maxLength: 300 }),
          ),
      contentType: fc.constantFrom(...CONTENT_TYPES),
      credentials,
      extra: extraHeaders,
    })
    .map((c): RawRequest => {
      const headers: [string, string][] = [...c.credentials, ...c.extra];
      if (c.contentType) headers.push(["Content-Type", c.contentType]);
      const withBody = c.method !== "GET" && c.method !== "HEAD";
      return {
        method: c.method,
        target: `${pathOf(entry, c.params)}${c.query}`,
        headers,
        body: withBody ? c.body : undefined,
      };
    });
}

function nearValidRouteRequest(entry: RouteEntry, ids: RealIds, credentials: FuzzCredentials) {
  const input: DescMessage | undefined = entry.kind === "rpc" ? entry.method.input : undefined;
  const params = entry.segments.flatMap((s, i) => {
    if (!("param" in s)) return [];
    const before = entry.segments[i - 1];
    const real = realIdFor(s.param, ids, before && "literal" in before ? before.literal : "");
    const fallback = s.param === "chunk_number" ? fc.constantFrom("1", "2") : fc.uuid();
    return [
      fc.oneof(
        { weight: 5, arbitrary: real ? fc.constant(real) : fallback },
        { weight: 1, arbitrary: paramValue(Object.values(ids)) },
      ),
    ];
  });
  const admin = entry.segments[0] && "literal" in entry.segments[0] && entry.segments[0].literal === "admin";
  const own: [string, string][][] = admin
    ? [[["Authorization", `Bearer ${credentials.admin}`]]]
    : [
        [["X-Api-Key", credentials.key]],
        [["X-Api-Key", credentials.key]],
        [["Authorization", `Bearer ${credentials.clientToken}`]],
      ];
  return fc
    .record({
      params: fc.tuple(...params),
      query: fc.oneof(
        fc.constant(""),
        targetedQuery(input ? input.fields.map((f) => f.name) : RAW_QUERY_KEYS),
        queryFor(input ? input.fields.map((f) => f.name) : RAW_QUERY_KEYS),
      ),
      body: input ? nearValidMessage(input, ids).map((v) => JSON.stringify(v)) : fc.constant("{}"),
      credentials: fc.constantFrom(...own),
      extra: fc.oneof(fc.constant<[string, string][]>([]), extraHeaders),
    })
    .map((c): RawRequest => {
      const headers: [string, string][] = [...c.credentials, ...c.extra, ["Content-Type", "application/json"]];
      const withBody = entry.verb !== "GET" && entry.verb !== "HEAD";
      return {
        method: entry.verb,
        target: `${pathOf(entry, c.params)}${c.query}`,
        headers,
        body: withBody ? c.body : undefined,
      };
    });
}

export interface CheckOptions {
  /** Connect answers 501 (unimplemented) for a compression it does not know. */
  allow501?: boolean;
  /** The request was cut short on purpose: a close without a status is a fine answer. */
  allowClose?: boolean;
  send?: SendOptions;
  /** Concurrent callers attribute crashes themselves (a crash cannot say which request caused it). */
  ignoreCrashes?: boolean;
}

/**
 * Sends one request and throws (recording a finding) when the server crashed,
 * hung, closed without answering or answered 5xx.
 */
export async function expectAnswered(
  report: FuzzReport,
  port: number,
  label: string,
  request: RawRequest,
  options: CheckOptions = {},
): Promise<number | undefined> {
  const mark = report.crashes.length;
  const res = await report.track(
    send(port, request, { timeoutMs: REQUEST_TIMEOUT_MS, ...options.send }).then(async (r) => {
      await settle();
      return r;
    }),
  );
  const crashes = report.crashesSince(mark);
  report.count(res.timedOut ? "timeout" : (res.status ?? "closed"));
  const repro = describeRequest(request);
  if (crashes.length > 0 && !options.ignoreCrashes)
    throw report.fail(`${label} → ${crashes[0]}`, repro, `process-level crash: ${crashes.join("; ")}`);
  // The caller replays to attribute the crash; a hang next to one is its symptom, not a finding of its own.
  if (res.timedOut && crashes.length > 0) throw new Error(`${label}: no answer next to a crash`);
  if (res.timedOut)
    throw report.fail(
      `${label} → no answer within ${REQUEST_TIMEOUT_MS} ms`,
      repro,
      `hang; got ${JSON.stringify(res.head)}`,
    );
  if (res.status === undefined && !options.allowClose) {
    throw report.fail(`${label} → closed without a status`, repro, "connection closed with no response");
  }
  const status = res.status ?? 0;
  if (status >= 500 && !(status === 501 && options.allow501)) {
    throw report.fail(
      `${label} → ${status} ${messageOf(res.head)}`,
      repro,
      `answered ${status}: ${JSON.stringify(res.head)}`,
    );
  }
  const hidden = hiddenServerError(res.head);
  if (hidden) throw report.fail(`${label} → ${hidden}`, repro, `answered ${hidden}: ${JSON.stringify(res.head)}`);
  return res.status;
}

/**
 * gRPC-Web and Connect streaming answer errors with HTTP 200 and the code in
 * trailers or the end-stream message: their server errors are the 5xx of those protocols.
 */
export function hiddenServerError(head: string): string | undefined {
  const grpc = /grpc-status: ?(\d+)/i.exec(head)?.[1];
  if (grpc === "2" || grpc === "13" || grpc === "15") {
    return `grpc-status ${grpc} ${normalized(/grpc-message: ?([^\r\n]*)/i.exec(head)?.[1] ?? "")}`;
  }
  const connect = /"error":\{"code":"(internal|unknown|data_loss)"/.exec(head)?.[1];
  if (connect) return `end-stream ${connect} ${messageOf(head)}`;
  return undefined;
}

/** The error message of a response, with ids and numbers blanked so one bug gets one signature. */
function messageOf(head: string): string {
  const body = head.slice(head.indexOf("\r\n\r\n") + 4);
  return normalized(/"(?:message|error_description)":"((?:[^"\\]|\\.)*)"/.exec(body)?.[1] ?? body.slice(0, 80));
}

function normalized(message: string): string {
  return message
    .replace(/[0-9a-f]{8}-[0-9a-f-]{27}/gi, "<id>")
    .replace(/\d+/g, "<n>")
    .slice(0, 120);
}
