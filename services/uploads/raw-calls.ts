import { Readable } from "node:stream";
import { type Client, Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { UploadsService } from "../../gen/converger/v1/uploads_pb.js";
import { CLIENT_IP_HEADER } from "../common/access/context.js";
import { INTERNAL_HEADER } from "../common/access/internal.js";
import type { RawContext } from "../common/service.js";
import { createTtlCache } from "../common/ttl-cache.js";
import { partsOf } from "./byte-parts.js";

const CREDENTIAL_HEADERS = ["authorization", "x-api-key", "traceparent"];
// UPLOAD_MAX_BYTES changes only with a restart of the uploads service.
const LIMITS_TTL_MS = 60_000;

/** How the gateway's raw routes reach the uploads service, wherever it runs. */
export interface UploadsCalls {
  uploads: Client<typeof UploadsService>;
  /** The caller's credentials, so the service's access rules apply to raw routes too. */
  asCaller(ctx: RawContext): { headers: Record<string, string> };
  maxUploadBytes(): Promise<bigint>;
  /** Streams the request body into chunk `n`; answers the chunks received. */
  writeChunk(ctx: RawContext, uploadId: string, chunkNumber: number): Promise<number[]>;
  /** Streams the request body onto a streamed (tus) upload at `offset`; answers the new offset. */
  append(ctx: RawContext, uploadId: string, offset: bigint, checksum?: Checksum): Promise<bigint>;
  terminate(ctx: RawContext, uploadId: string): Promise<void>;
  /** A stored file's bytes, resolved once they are open (so that a failure is still a clean error). */
  readFile(ctx: RawContext, fileId: string, range?: { start: number; end: number }): Promise<Readable>;
}

export interface Checksum {
  algorithm: string;
  digest: Buffer;
}

/**
 * The byte-carrying RPCs are internal: a raw route first asks a public RPC
 * with the caller's credentials whether the caller may touch the upload or
 * file, then moves the bytes under the internal token.
 */
export function createUploadsCalls(transport: Transport, internalToken: string | undefined): UploadsCalls {
  const uploads = createClient(UploadsService, transport);
  const limits = createTtlCache<bigint>(LIMITS_TTL_MS, 1);
  const internal = () => {
    if (internalToken === undefined) throw new ConnectError("no internal token to reach uploads with", Code.Internal);
    return { [INTERNAL_HEADER]: internalToken };
  };
  const asGateway = (ctx: RawContext) => ({
    headers: {
      ...internal(),
      "x-request-id": ctx.requestId,
      ...(typeof ctx.req.headers.traceparent === "string" ? { traceparent: ctx.req.headers.traceparent } : {}),
    },
    signal: abortedOnHangUp(ctx),
  });

  return {
    uploads,
    asCaller,
    maxUploadBytes: () =>
      limits.get("max", async () => {
        const found = await uploads.getUploadLimits({}, { headers: internal() });
        return found.maxUploadBytes;
      }),
    async writeChunk(ctx, uploadId, chunkNumber) {
      const messages = targetThenBody(ctx, { uploadId, chunkNumber });
      return (await uploads.writeChunk(messages, asGateway(ctx))).chunksReceived;
    },
    async append(ctx, uploadId, offset, checksum) {
      return (await uploads.appendUpload(targetThenBody(ctx, { uploadId, offset, checksum }), asGateway(ctx))).offset;
    },
    async terminate(ctx, uploadId) {
      await uploads.terminateUpload({ uploadId }, asGateway(ctx));
    },
    async readFile(ctx, fileId, range) {
      const wanted = range && { start: BigInt(range.start), end: BigInt(range.end) };
      const parts = uploads.readFile({ fileId, range: wanted }, asGateway(ctx))[Symbol.asyncIterator]();
      const first = await parts.next();
      if (first.done || first.value.part.case !== "opened") {
        throw new ConnectError("the file's bytes did not open", Code.Internal);
      }
      async function* data() {
        for (let next = await parts.next(); !next.done; next = await parts.next()) {
          if (next.value.part.case === "data") yield next.value.part.value;
        }
      }
      return Readable.from(data(), { objectMode: false });
    },
  };
}

/** A byte-carrying stream: the first message says where the bytes go, the request body follows in parts. */
async function* targetThenBody<Target>({ req }: RawContext, target: Target) {
  yield { part: { case: "target" as const, value: target } };
  for await (const data of partsOf(req)) yield { part: { case: "data" as const, value: data } };
}

function asCaller({ req, requestId, clientIp }: RawContext): { headers: Record<string, string> } {
  const headers: Record<string, string> = { "x-request-id": requestId, [CLIENT_IP_HEADER]: clientIp };
  for (const name of CREDENTIAL_HEADERS) {
    const value = req.headers[name];
    if (typeof value === "string") headers[name] = value;
  }
  return { headers };
}

/** Cancels the call when the client goes away before its answer is complete. */
function abortedOnHangUp({ res }: RawContext): AbortSignal {
  const abort = new AbortController();
  res.on("close", () => {
    if (!res.writableFinished) abort.abort();
  });
  return abort.signal;
}
