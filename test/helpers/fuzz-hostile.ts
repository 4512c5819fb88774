import { gzipSync } from "node:zlib";
import fc from "fast-check";
import { encodeBody, envelope } from "./bombs.js";
import type { CheckOptions } from "./fuzz-http.js";
import type { RawRequest } from "./raw-http.js";

export interface HostileCase {
  label: string;
  request: RawRequest;
  options?: CheckOptions | undefined;
}

/** Request targets that URL parsers and routers trip over. */
const HOSTILE_TARGETS = [
  "//",
  "///",
  "//[",
  "//:80",
  "//%zz",
  "/\\",
  "/\\\\x",
  "http://x/",
  "http://x/v1/channels",
  "*",
  "/%00",
  "/%zz",
  "/..",
  "/v1/../admin/v1/tenants",
  "/v1/channels/..%2f..%2fadmin",
  "/v1/channels?%zz",
  "/v1/channels#frag",
  "/v1//channels",
  "/v1/channels/",
  "/healthz?",
  "/converger.v1.ChannelsService/ListChannels/",
  "/converger.v1.ChannelsService/",
  "/converger.v1.NoSuchService/X",
  `/${"a".repeat(8000)}`,
  `/v1/channels/${"%41".repeat(5000)}`,
  `/${"x/".repeat(4000)}`,
];

const METHODS = ["GET", "POST", "PROPFIND", "BREW", "get", "TRACE", "OPTIONS", "M-SEARCH", "PATCH", "HEAD"];

/** The fixed hostile requests of the issue, each checked individually. */
export function hostileCases(key: string, conversationId: string): HostileCase[] {
  const activities = `/v1/conversations/${conversationId}/activities`;
  const json = '{"type":"message","text":"hi","from":{"id":"u"}}';
  const auth: [string, string] = ["X-Api-Key", key];
  const cases: HostileCase[] = [];
  for (const target of HOSTILE_TARGETS)
    cases.push({ label: `GET ${target.slice(0, 40)}`, request: { method: "GET", target, headers: [] } });
  for (const method of METHODS) cases.push({ label: `${method} /`, request: { method, target: "/", headers: [] } });
  cases.push({ label: "OPTIONS *", request: { method: "OPTIONS", target: "*", headers: [] } });
  // Node's http server closes a CONNECT it has no 'connect' listener for: an answer, not a hang.
  cases.push({
    label: "CONNECT",
    request: { method: "CONNECT", target: "127.0.0.1:1", headers: [] },
    options: { allowClose: true },
  });
  cases.push({ label: `overlong path`, request: { method: "GET", target: `/${"a".repeat(100_000)}`, headers: [] } });
  const post = (label: string, headers: [string, string][], body: Uint8Array | string = json, options?: CheckOptions) =>
    cases.push({ label, request: { method: "POST", target: activities, headers: [auth, ...headers], body }, options });
  post("duplicate Content-Length", [
    ["Content-Length", "5"],
    ["Content-Length", "7"],
  ]);
  post("duplicate Authorization", [
    ["Authorization", "Bearer a"],
    ["Authorization", "Bearer b"],
  ]);
  post("duplicate X-Api-Key", [
    ["X-Api-Key", "cvk_other"],
    ["Content-Type", "application/json"],
  ]);
  post("duplicate Content-Type", [
    ["Content-Type", "application/json"],
    ["Content-Type", "text/plain"],
  ]);
  post("20 KB header", [["X-Big", "b".repeat(20_000)]]);
  post(
    "300 headers",
    Array.from({ length: 300 }, (_, i): [string, string] => [`X-H${i}`, "v"]),
  );
  post("header with control byte", [["X-Bad", "a\u0001b"]]);
  for (const type of [
    undefined,
    "application/json; charset=latin1",
    "application/proto",
    "application/connect+json",
    "application/grpc-web",
    "multipart/form-data; boundary=zz",
    "application/json; charset=utf-16",
  ]) {
    post(`Content-Type ${type ?? "(none)"}`, type ? [["Content-Type", type]] : []);
  }
  for (const encoding of ["gzip", "br", "deflate", "zstd", "x-unknown"]) {
    for (const valid of [true, false]) {
      const body = encodeBody(Buffer.from(json), encoding, valid);
      post(
        `Content-Encoding ${encoding} (${valid ? "valid" : "invalid"})`,
        [
          ["Content-Type", "application/json"],
          ["Content-Encoding", encoding],
        ],
        body,
      );
    }
  }
  const chunked = (label: string, body: string, options?: CheckOptions) =>
    cases.push({
      label,
      request: {
        method: "POST",
        target: activities,
        headers: [auth, ["Content-Type", "application/json"], ["Transfer-Encoding", "chunked"]],
        body,
      },
      options,
    });
  chunked("chunked, bad chunk size", "zz\r\nabc\r\n0\r\n\r\n");
  chunked("chunked, size larger than chunk", "ff\r\n{}\r\n0\r\n\r\n", { allowClose: true, send: { halfClose: true } });
  chunked("chunked, no terminator", `${json.length.toString(16)}\r\n${json}\r\n`, {
    allowClose: true,
    send: { halfClose: true },
  });
  chunked("chunked, huge size", "ffffffffffffffffff\r\n{}\r\n0\r\n\r\n");
  chunked("chunked, valid", `${json.length.toString(16)}\r\n${json}\r\n0\r\n\r\n`);
  cases.push({
    label: "Content-Length and Transfer-Encoding",
    request: {
      method: "POST",
      target: activities,
      headers: [auth, ["Content-Length", "3"], ["Transfer-Encoding", "chunked"]],
      body: "0\r\n\r\n",
    },
  });
  post(
    "Content-Length larger than body",
    [
      ["Content-Type", "application/json"],
      ["Content-Length", "999"],
    ],
    json,
    {
      allowClose: true,
      send: { halfClose: true },
    },
  );
  post("Content-Length smaller than body", [
    ["Content-Type", "application/json"],
    ["Content-Length", "3"],
  ]);
  post("Content-Length negative", [["Content-Length", "-1"]]);
  post("Content-Length not a number", [["Content-Length", "abc"]]);
  post("Content-Length past int64", [["Content-Length", "99999999999999999999999"]]);
  post(
    "gzip of gzip",
    [
      ["Content-Type", "application/json"],
      ["Content-Encoding", "gzip, gzip"],
    ],
    gzipSync(gzipSync(json)),
  );
  return cases;
}

/** Random combinations of hostile methods, targets, headers and bodies. */
export function hostileRequestArb(key: string): fc.Arbitrary<RawRequest> {
  return fc
    .record({
      method: fc.constantFrom(...METHODS, "DELETE", "PUT", "post"),
      target: fc.oneof(
        fc.constantFrom(...HOSTILE_TARGETS),
        fc.webPath().map((p) => p || "/"),
        fc.stringMatching(/^\/[A-Za-z0-9%./\\:[\]@!$&'()*+,;=~_-]{0,60}$/),
      ),
      headers: fc.subarray<[string, string]>([
        ["X-Api-Key", key],
        ["Content-Type", "application/json"],
        ["Content-Type", "application/grpc-web+proto"],
        ["Content-Encoding", "gzip"],
        ["Content-Encoding", "x-unknown"],
        ["Connect-Protocol-Version", "1"],
        ["Transfer-Encoding", "chunked"],
        ["Expect", "100-continue"],
        ["X-Forwarded-For", "::1, 10.0.0.1, garbage"],
        ["Host", ""],
        ["Accept-Encoding", "br;q=2, *"],
      ]),
      body: fc.oneof(fc.constant(""), fc.string({ maxLength: 100 }), fc.uint8Array({ maxLength: 100 })),
    })
    .map((c) => ({
      method: c.method,
      target: c.target,
      headers: c.headers,
      // A chunked body must end: send one well-formed chunk around the payload.
      body: c.headers.some(([n]) => n === "Transfer-Encoding")
        ? `${Buffer.byteLength(String(c.body)).toString(16)}\r\n${String(c.body)}\r\n0\r\n\r\n`
        : c.body,
    }));
}

/**
 * Compression bombs on the Connect, gRPC-Web and REST surfaces, with and
 * without credentials (authentication must come before decompression).
 */
export function bombCases(gzip: Buffer, br: Buffer, key: string, conversationId: string): HostileCase[] {
  const target = "/converger.v1.ConversationsService/ListActivities";
  const auth: [string, string][] = [["X-Api-Key", key]];
  const post = (label: string, headers: [string, string][], body: Buffer, to = target): HostileCase => ({
    label,
    request: { method: "POST", target: to, headers, body },
  });
  return [
    post(
      "gzip bomb, Connect JSON, authenticated",
      [...auth, ["Content-Type", "application/json"], ["Content-Encoding", "gzip"]],
      gzip,
    ),
    post(
      "gzip bomb, Connect JSON, anonymous",
      [
        ["Content-Type", "application/json"],
        ["Content-Encoding", "gzip"],
      ],
      gzip,
    ),
    post(
      "gzip bomb, gRPC-Web, authenticated",
      [...auth, ["Content-Type", "application/grpc-web+proto"], ["grpc-encoding", "gzip"]],
      envelope(gzip, true),
    ),
    post(
      "br bomb, Connect proto, authenticated",
      [...auth, ["Content-Type", "application/proto"], ["Content-Encoding", "br"]],
      br,
    ),
    post(
      "br bomb, Connect streaming, authenticated",
      [...auth, ["Content-Type", "application/connect+json"], ["Connect-Content-Encoding", "br"]],
      envelope(br, true),
    ),
    post(
      "gzip bomb, REST",
      [...auth, ["Content-Type", "application/json"], ["Content-Encoding", "gzip"]],
      gzip,
      `/v1/conversations/${conversationId}/activities`,
    ),
  ];
}
