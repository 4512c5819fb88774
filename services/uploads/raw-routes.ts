import { pipeline } from "node:stream/promises";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { UploadsService } from "../../gen/converger/v1/uploads_pb.js";
import { CLIENT_IP_HEADER } from "../common/access/context.js";
import { writeJson } from "../common/rpc/http-io.js";
import type { RawContext, RawRoute } from "../common/service.js";
import { ChunkSizeError } from "./blob-store.js";
import type { UploadsModule } from "./service.js";
import { tusRoutes } from "./tus-routes.js";

const CREDENTIAL_HEADERS = ["authorization", "x-api-key", "traceparent"];

/** The caller's credentials, so the service's access rules apply to raw routes too. */
function callerHeaders({ req, requestId, clientIp }: RawContext): Record<string, string> {
  const headers: Record<string, string> = { "x-request-id": requestId, [CLIENT_IP_HEADER]: clientIp };
  for (const name of CREDENTIAL_HEADERS) {
    const value = req.headers[name];
    if (typeof value === "string") headers[name] = value;
  }
  return headers;
}

/**
 * Chunk bodies and downloads as raw routes: bytes stream between the socket
 * and the blob store, never through a JSON body. Each first asks the service
 * (same access rules as the JSON routes) whether the caller may touch the
 * upload or file. They stream to storage in this process, so the uploads
 * service runs in every process that serves these routes.
 */
export function uploadsRawRoutes(transport: Transport, local?: UploadsModule): RawRoute[] {
  const uploads = createClient(UploadsService, transport);
  const hosted = () => {
    if (!local) throw new ConnectError("uploads are served by processes running the uploads service", Code.Unavailable);
    return local;
  };
  return [
    ...tusRoutes(uploads, hosted, callerHeaders, local?.maxUploadBytes ?? 0),
    {
      method: "PATCH",
      path: "/v1/files/upload/{upload_id}/{chunk_number}",
      // Checked against the upload's own chunk size below; this only bounds the declared length.
      bodyLimitBytes: Number.MAX_SAFE_INTEGER,
      async handle(ctx) {
        const module = hosted();
        const n = chunkNumber(ctx.params.chunk_number ?? "");
        const status = await uploads.getUploadStatus(
          { uploadId: ctx.params.upload_id ?? "" },
          { headers: callerHeaders(ctx) },
        );
        if (n < 1 || n > status.totalChunks) {
          throw new ConnectError(`chunk_number: must be between 1 and ${status.totalChunks}`, Code.InvalidArgument);
        }
        const expected =
          n < status.totalChunks ? status.chunkSize : status.size - status.chunkSize * BigInt(status.totalChunks - 1);
        const declared = ctx.req.headers["content-length"];
        if (declared !== undefined && BigInt(declared) !== expected) {
          ctx.res.setHeader("connection", "close");
          throw new ConnectError(
            `chunk ${n} must be ${expected} bytes, Content-Length says ${declared}`,
            Code.InvalidArgument,
          );
        }
        try {
          const row = await module.acceptChunk(status.uploadId, n, ctx.req, Number(expected));
          const received = row.received.flatMap((got, i) => (got ? [i + 1] : []));
          writeJson(ctx.res, 200, { chunk_number: n, chunks_received: received });
        } catch (error) {
          if (error instanceof ChunkSizeError) {
            ctx.res.setHeader("connection", "close");
            throw new ConnectError(error.message, Code.InvalidArgument);
          }
          throw error;
        }
      },
    },
    {
      method: "GET",
      path: "/v1/files/{file_id}/content",
      bodyLimitBytes: 0,
      async handle(ctx) {
        const module = hosted();
        const file = await uploads.getFile({ fileId: ctx.params.file_id ?? "" }, { headers: callerHeaders(ctx) });
        const size = Number(file.size);
        const range = rangeOf(ctx.req.headers.range, size);
        const key = await module.storageKey(file.id);
        const headers: Record<string, string> = {
          "content-type": file.contentType,
          "content-disposition": contentDisposition(file.filename),
          "x-content-type-options": "nosniff",
          "accept-ranges": "bytes",
          "cache-control": "private, no-store",
        };
        if (range === "unsatisfiable") {
          ctx.res.writeHead(416, { "content-range": `bytes */${size}` }).end();
          return;
        }
        const bytes = await module.openFile(key, range ?? undefined);
        if (range) {
          headers["content-range"] = `bytes ${range.start}-${range.end}/${size}`;
          headers["content-length"] = String(range.end - range.start + 1);
          ctx.res.writeHead(206, headers);
        } else {
          headers["content-length"] = String(size);
          ctx.res.writeHead(200, headers);
        }
        // Past the headers an error can only cut the response short: the client sees it fail, never hangs.
        await pipeline(bytes, ctx.res).catch(() => ctx.res.destroy());
      },
    },
  ];
}

function chunkNumber(text: string): number {
  if (!/^-?\d+$/.test(text)) throw new ConnectError("chunk_number: must be an integer", Code.InvalidArgument);
  return Number(text);
}

/** One `bytes=a-b`, `bytes=a-` or `bytes=-n` range (RFC 9110 §14.1.2); others are ignored (full body). */
function rangeOf(header: string | undefined, size: number): { start: number; end: number } | "unsatisfiable" | null {
  const match = /^bytes=(\d*)-(\d*)$/.exec(header?.trim() ?? "");
  if (!match || (match[1] === "" && match[2] === "")) return null;
  let start: number;
  let end: number;
  if (match[1] === "") {
    start = Math.max(0, size - Number(match[2]));
    end = size - 1;
  } else {
    start = Number(match[1]);
    end = match[2] === "" ? size - 1 : Math.min(Number(match[2]), size - 1);
  }
  if (start >= size || start > end) return "unsatisfiable";
  return { start, end };
}

/** `attachment` with an ASCII fallback and the UTF-8 name (RFC 6266 / 8187). */
function contentDisposition(filename: string): string {
  const ascii = filename.replace(/[^\x20-\x7e]/g, "_").replace(/["\\]/g, "_");
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(filename)}`;
}
