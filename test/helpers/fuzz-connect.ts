import { create, type DescMethod, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { encodeBody, envelope } from "./bombs.js";
import { bodyFor, encodeHostile, nearValidMessage, type RealIds } from "./fuzz-arbitraries.js";
import type { FuzzCredentials } from "./fuzz-http.js";
import type { RawRequest } from "./raw-http.js";

/** Encodings Connect knows (gzip, br), ones it does not, and none. */
const ENCODINGS = ["", "gzip", "br", "deflate", "zstd", "x-unknown", "identity", "gzip, br"];
/** A header naming a list ("gzip, br") is not one encoding Connect knows either. */
export const KNOWN_ENCODINGS = new Set(["", "gzip", "br", "identity"]);

export interface ConnectCase {
  request: RawRequest;
  encoding: string;
}

/**
 * One Connect/gRPC-Web call to `method`: JSON or binary, unary or enveloped,
 * compressed validly, invalidly or with an unknown encoding.
 */
export function connectRequestArb(method: DescMethod, ids: RealIds, credentials: FuzzCredentials) {
  const path = `/${method.parent.typeName}/${method.name}`;
  const json = fc
    .oneof(
      bodyFor(method.input),
      nearValidMessage(method.input, ids).map((v) => JSON.stringify(v)),
    )
    .map((b) => Buffer.from(b));
  const proto = fc.oneof(
    fc.constant(Buffer.from(toBinary(method.input, create(method.input)))),
    fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
  );
  return fc
    .record({
      protocol: fc.constantFrom("json", "proto", "grpc-web", "grpc-web-json", "connect-stream", "grpc", "get"),
      json,
      proto,
      encoding: fc.constantFrom(...ENCODINGS),
      validCompression: fc.boolean(),
      lengthLies: fc.boolean(),
      versionHeader: fc.boolean(),
      timeout: fc.constantFrom(undefined, "1", "-1", "99999999999", "x", "0m"),
      credentials: fc.oneof(
        credentials.any,
        fc.constantFrom<[string, string][]>(
          [["X-Api-Key", credentials.key]],
          [["Authorization", `Bearer ${credentials.admin}`]],
        ),
      ),
    })
    .map((c): ConnectCase => {
      const headers: [string, string][] = [...c.credentials];
      if (c.versionHeader) headers.push(["Connect-Protocol-Version", "1"]);
      const compressed = c.encoding !== "" && c.encoding !== "identity";
      const payload = (p: Uint8Array) => (compressed ? encodeBody(p, c.encoding, c.validCompression) : p);
      const framed = (p: Uint8Array) => {
        const body = payload(p);
        return envelope(body, compressed, c.lengthLies ? body.length + 7 : body.length);
      };
      let body: Uint8Array;
      let method = "POST";
      let target = path;
      switch (c.protocol) {
        case "json":
        case "proto":
          headers.push(["Content-Type", `application/${c.protocol}`]);
          if (c.encoding) headers.push(["Content-Encoding", c.encoding]);
          if (c.timeout) headers.push(["Connect-Timeout-Ms", c.timeout]);
          body = payload(c.protocol === "json" ? c.json : c.proto);
          break;
        case "connect-stream":
          headers.push(["Content-Type", "application/connect+json"]);
          if (c.encoding) headers.push(["Connect-Content-Encoding", c.encoding]);
          body = framed(c.json);
          break;
        case "grpc-web":
        case "grpc-web-json":
        case "grpc":
          headers.push([
            "Content-Type",
            c.protocol === "grpc"
              ? "application/grpc"
              : c.protocol === "grpc-web"
                ? "application/grpc-web+proto"
                : "application/grpc-web+json",
          ]);
          if (c.encoding) headers.push(["grpc-encoding", c.encoding]);
          if (c.timeout) headers.push(["grpc-timeout", `${c.timeout}S`]);
          body = framed(c.protocol === "grpc-web-json" ? c.json : c.proto);
          break;
        default:
          method = "GET";
          target = `${path}?connect=v1&encoding=json&message=${encodeHostile(c.json.toString("utf8"))}${c.encoding ? `&compression=${c.encoding}` : ""}`;
          body = Buffer.alloc(0);
      }
      return { request: { method, target, headers, body }, encoding: c.encoding };
    });
}
