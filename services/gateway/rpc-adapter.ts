import type { IncomingMessage, ServerResponse } from "node:http";
import { Code, ConnectError, type ConnectRouter, createConnectRouter, createContextValues } from "@connectrpc/connect";
import type { Compression, UniversalServerResponse } from "@connectrpc/connect/protocol";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import { kAuthenticated } from "../common/access/context.js";
import { type Authenticate, createRpcGuard, writeRpcError } from "./rpc-guard.js";

type NodeHandler = (req: IncomingMessage, res: ServerResponse) => void;

export interface RpcAdapterOptions {
  routes: (router: ConnectRouter) => void;
  /** Cap on a request body, and on what a compressed one may inflate to. */
  readMaxBytes: number;
  authenticate: Authenticate;
  /** Requests whose path is no RPC (the REST transcoder on the gateway). */
  fallback?: NodeHandler;
  /** The listener's failure boundary, for what escapes a call. */
  fail: (req: IncomingMessage, res: ServerResponse, error: unknown) => void;
}

/**
 * Connect, gRPC and gRPC-Web on node:http, as connect-node's adapter serves
 * them, with three differences for hostile input: the caller is
 * authenticated from the headers before the body is read (rpc-guard.ts);
 * a body that does not inflate answers invalid_argument, not internal; and
 * so does a binary body that does not decode, which connect-es reports as
 * an internal error of ours.
 */
export function createRpcAdapter(options: RpcAdapterOptions): NodeHandler {
  const router = createConnectRouter({
    readMaxBytes: options.readMaxBytes,
    acceptCompression: [inflateOrRefuse(compressionGzip), inflateOrRefuse(compressionBrotli)],
  });
  options.routes(router);
  const handlers = new Map(router.handlers.map((h) => [h.requestPath, h]));
  const guard = createRpcGuard(options.authenticate, options.readMaxBytes);
  const notFound: NodeHandler = (_req, res) => {
    res.writeHead(404);
    res.end();
  };
  return (req, res) => {
    const handler = handlers.get((req.url ?? "").split("?", 1)[0] ?? "");
    if (!handler) return (options.fallback ?? notFound)(req, res);
    void (async () => {
      const principal = await guard(handler.method, req, res);
      if (!principal) return;
      let request: ReturnType<typeof universalRequestFromNodeRequest>;
      try {
        // Builds a URL from Host / :authority, which a client may send broken or not at all. The
        // caller travels in server-side context values (never from the wire): no second authentication.
        const values = createContextValues().set(kAuthenticated, principal);
        request = universalRequestFromNodeRequest(req, res, undefined, values);
      } catch {
        const error = new ConnectError("the request needs a valid Host (or :authority)", Code.InvalidArgument);
        return writeRpcError(req, res, error);
      }
      const response = await handler(request);
      await universalResponseToNodeResponse(await decodeFailuresAsInvalid(response), res);
    })().catch((error: unknown) => {
      // A client that went away mid-answer is no failure of ours.
      if (ConnectError.from(error).code === Code.Aborted || res.destroyed) return;
      options.fail(req, res, error);
    });
  };
}

/** connect-node's codec, with an undecodable body reported as the caller's mistake. */
function inflateOrRefuse(compression: Compression): Compression {
  return {
    name: compression.name,
    compress: (bytes) => compression.compress(bytes),
    async decompress(bytes, readMaxBytes) {
      try {
        return await compression.decompress(bytes, readMaxBytes);
      } catch (error) {
        const connectError = ConnectError.from(error);
        if (connectError.code === Code.ResourceExhausted) throw connectError;
        throw new ConnectError(`the body is not valid ${compression.name}`, Code.InvalidArgument);
      }
    },
  };
}

const DECODE_FAILURE = "parse binary: ";
const GRPC_INTERNAL = String(Code.Internal);
const GRPC_INVALID = String(Code.InvalidArgument);

/**
 * Rewrites connect-es's `internal` answer to a request body that is not the
 * message it claims to be into `invalid_argument`, in each protocol: the
 * Connect unary error body and its status, gRPC's trailers, gRPC-Web's
 * trailer frame. Any other answer passes untouched.
 */
async function decodeFailuresAsInvalid(response: UniversalServerResponse): Promise<UniversalServerResponse> {
  const type = response.header?.get("content-type") ?? "";
  const body = response.body;
  if (!body || Symbol.asyncIterator in body === false) return response;
  const chunks = body as AsyncIterable<Uint8Array>;
  if (response.status === 500 && type.startsWith("application/json")) {
    const bytes = Buffer.concat(await collect(chunks));
    const error = JSON.parse(bytes.toString("utf8")) as { code?: string; message?: string };
    if (error.code !== "internal" || !error.message?.startsWith(DECODE_FAILURE))
      return { ...response, body: once(bytes) };
    const payload = Buffer.from(JSON.stringify({ ...error, code: "invalid_argument" }));
    response.header?.set("content-length", String(payload.length));
    return { ...response, status: 400, body: once(payload) };
  }
  if (type.startsWith("application/grpc-web")) return { ...response, body: mapChunks(chunks, rewriteTrailerFrame) };
  if (type.startsWith("application/grpc") && response.trailer) {
    const trailer = response.trailer;
    return {
      ...response,
      body: mapChunks(
        chunks,
        (chunk) => chunk,
        () => void rewriteStatus(trailer),
      ),
    };
  }
  return response;
}

function rewriteStatus(trailer: Headers): void {
  const message = decodeURIComponent(trailer.get("grpc-message") ?? "");
  if (trailer.get("grpc-status") === GRPC_INTERNAL && message.startsWith(DECODE_FAILURE)) {
    trailer.set("grpc-status", GRPC_INVALID);
  }
}

/** A gRPC-Web trailer frame (flag 0x80, then `name: value` lines) with its status rewritten. */
function rewriteTrailerFrame(chunk: Uint8Array): Uint8Array {
  if (chunk.length < 5 || ((chunk[0] as number) & 0x80) === 0) return chunk;
  const length = Buffer.from(chunk.buffer, chunk.byteOffset + 1, 4).readUInt32BE(0);
  if (chunk.length !== 5 + length) return chunk;
  const trailer = new Headers();
  for (const line of Buffer.from(chunk.subarray(5)).toString("utf8").split("\r\n")) {
    const at = line.indexOf(":");
    if (at > 0) trailer.append(line.slice(0, at).trim(), line.slice(at + 1).trim());
  }
  if (trailer.get("grpc-status") !== GRPC_INTERNAL) return chunk;
  rewriteStatus(trailer);
  let text = "";
  trailer.forEach((value, name) => {
    text += `${name}: ${value}\r\n`;
  });
  const data = Buffer.from(text);
  const frame = Buffer.alloc(5 + data.length);
  frame.writeUInt8(chunk[0] as number, 0);
  frame.writeUInt32BE(data.length, 1);
  data.copy(frame, 5);
  return frame;
}

async function collect(chunks: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const all: Uint8Array[] = [];
  for await (const chunk of chunks) all.push(chunk);
  return all;
}

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}

async function* mapChunks(
  chunks: AsyncIterable<Uint8Array>,
  map: (chunk: Uint8Array) => Uint8Array,
  onEnd?: () => void,
): AsyncIterable<Uint8Array> {
  for await (const chunk of chunks) yield map(chunk);
  onEnd?.();
}
