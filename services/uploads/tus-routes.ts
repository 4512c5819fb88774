import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { UploadStatus } from "../../gen/converger/v1/uploads_pb.js";
import { UploadState } from "../../gen/converger/v1/uploads_pb.js";
import { withHttpStatus } from "../common/rpc/errors.js";
import type { RawContext, RawRoute } from "../common/service.js";
import type { Checksum, UploadsCalls } from "./raw-calls.js";

const TUS_VERSION = "1.0.0";
const EXTENSIONS = "creation,creation-with-upload,termination,checksum,expiration";
const CHECKSUMS: Record<string, string> = { sha1: "sha1", sha256: "sha256" };
const OFFSET_STREAM = "application/offset+octet-stream";

/**
 * tus 1.0.0 at /v1/tus/ (core, creation, creation-with-upload, termination,
 * checksum, expiration) over the same uploads and state machine as the chunked
 * API: a tus upload is a streamed upload (one part growing by appends), its
 * id works on /v1/files/upload/{id}/status, and reaching Upload-Length queues
 * the merge like `complete` does.
 */
export function tusRoutes(calls: UploadsCalls): RawRoute[] {
  const { uploads, asCaller } = calls;
  const tus = (ctx: RawContext) => {
    ctx.res.setHeader("tus-resumable", TUS_VERSION);
    const asked = ctx.req.headers["tus-resumable"];
    if (ctx.req.method !== "OPTIONS" && asked !== TUS_VERSION) {
      ctx.res.setHeader("tus-version", TUS_VERSION);
      throw statusError(`Tus-Resumable must be ${TUS_VERSION}`, 412);
    }
  };
  const status = async (ctx: RawContext): Promise<UploadStatus> => {
    const found = await uploads.getUploadStatus({ uploadId: ctx.params.id ?? "" }, asCaller(ctx));
    if (found.offset === undefined) throw new ConnectError("upload not found", Code.NotFound);
    const expires = found.expiresAt && timestampDate(found.expiresAt);
    if (expires && expires.getTime() < Date.now()) throw statusError("the upload expired", 410);
    if (expires) ctx.res.setHeader("upload-expires", expires.toUTCString());
    return found;
  };
  const options: RawRoute["handle"] = async (ctx) => {
    const maxBytes = await calls.maxUploadBytes();
    ctx.res.writeHead(204, {
      "tus-resumable": TUS_VERSION,
      "tus-version": TUS_VERSION,
      "tus-extension": EXTENSIONS,
      "tus-max-size": String(maxBytes),
      "tus-checksum-algorithm": Object.keys(CHECKSUMS).join(","),
    });
    ctx.res.end();
  };

  const creation: RawRoute["handle"] = async (ctx) => {
    tus(ctx);
    const length = header(ctx, "upload-length");
    // A refused creation-with-upload is not drained: its body may be the whole file.
    ctx.res.setHeader("connection", "close");
    if (!length || !/^\d+$/.test(length)) throw statusError("Upload-Length is required", 400);
    const maxBytes = await calls.maxUploadBytes();
    if (BigInt(length) > maxBytes) throw statusError(`Upload-Length exceeds Tus-Max-Size ${maxBytes}`, 413);
    const meta = metadataOf(header(ctx, "upload-metadata"));
    const created = await uploads.initiateUpload(
      {
        filename: meta.filename ?? meta.name ?? "file",
        size: BigInt(length),
        contentType: meta.filetype ?? meta.type ?? "application/octet-stream",
        conversationId: meta.conversation_id ?? "",
        streamed: true,
      },
      asCaller(ctx),
    );
    const headers: Record<string, string> = { location: `/v1/tus/${created.uploadId}` };
    if (ctx.req.headers["content-type"] === OFFSET_STREAM) {
      const offset = await calls.append(ctx, created.uploadId, 0n, checksumOf(ctx));
      headers["upload-offset"] = String(offset);
    } else ctx.req.resume();
    ctx.res.removeHeader("connection");
    ctx.res.writeHead(201, headers).end();
  };

  // The endpoint is /v1/tus/ (tus clients keep the slash); /v1/tus answers the same.
  return [
    ...["/v1/tus", "/v1/tus/", "/v1/tus/{id}"].map((path) => ({
      method: "OPTIONS",
      path,
      bodyLimitBytes: 0,
      handle: options,
    })),
    ...["/v1/tus", "/v1/tus/"].map((path) => ({
      method: "POST",
      path,
      bodyLimitBytes: Number.MAX_SAFE_INTEGER,
      handle: creation,
    })),
    {
      method: "HEAD",
      path: "/v1/tus/{id}",
      bodyLimitBytes: 0,
      async handle(ctx) {
        tus(ctx);
        const found = await status(ctx);
        ctx.res.writeHead(200, {
          "upload-offset": String(found.offset ?? 0n),
          "upload-length": String(found.size),
          "cache-control": "no-store",
        });
        ctx.res.end();
      },
    },
    {
      method: "PATCH",
      path: "/v1/tus/{id}",
      bodyLimitBytes: Number.MAX_SAFE_INTEGER,
      async handle(ctx) {
        tus(ctx);
        if (ctx.req.headers["content-type"] !== OFFSET_STREAM) {
          throw statusError(`Content-Type must be ${OFFSET_STREAM}`, 415);
        }
        const offset = header(ctx, "upload-offset");
        if (!offset || !/^\d+$/.test(offset)) throw statusError("Upload-Offset is required", 400);
        const found = await status(ctx);
        if (found.status !== UploadState.UPLOADING && BigInt(offset) !== found.offset) {
          throw statusError(`Upload-Offset must be ${found.offset}`, 409);
        }
        const reached = await calls.append(ctx, found.uploadId, BigInt(offset), checksumOf(ctx));
        ctx.res.writeHead(204, { "upload-offset": String(reached) }).end();
      },
    },
    {
      method: "DELETE",
      path: "/v1/tus/{id}",
      bodyLimitBytes: 0,
      async handle(ctx) {
        tus(ctx);
        const found = await status(ctx);
        await calls.terminate(ctx, found.uploadId);
        ctx.res.writeHead(204).end();
      },
    },
  ];
}

/** `key base64,key2 base64` (tus Upload-Metadata); values decoded as UTF-8. */
function metadataOf(header: string | undefined): Record<string, string> {
  const meta: Record<string, string> = {};
  for (const pair of (header ?? "").split(",")) {
    const [key, value = ""] = pair.trim().split(" ");
    if (key) meta[key] = Buffer.from(value, "base64").toString("utf8");
  }
  return meta;
}

/** `Upload-Checksum: <algorithm> <base64 digest>` (tus checksum extension). */
function checksumOf(ctx: RawContext): Checksum | undefined {
  const value = header(ctx, "upload-checksum");
  if (value === undefined) return undefined;
  const [name = "", digest = ""] = value.trim().split(" ");
  const algorithm = CHECKSUMS[name.toLowerCase()];
  if (!algorithm || !digest) throw statusError(`Upload-Checksum: ${name} is not supported (sha1, sha256)`, 400);
  return { algorithm, digest: Buffer.from(digest, "base64") };
}

/** tus answers by status; the code goes with it for gRPC and Connect callers. */
function statusError(message: string, status: number): ConnectError {
  const code =
    status === 409 || status === 412 ? Code.FailedPrecondition : status === 404 ? Code.NotFound : Code.InvalidArgument;
  return withHttpStatus(message, code, status);
}

function header(ctx: RawContext, name: string): string | undefined {
  const value = ctx.req.headers[name];
  return typeof value === "string" ? value : undefined;
}
