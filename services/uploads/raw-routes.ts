import { pipeline } from "node:stream/promises";
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import type { Config } from "../common/config.js";
import { writeJson } from "../common/rpc/http-io.js";
import type { RawRoute } from "../common/service.js";
import { chunkBytes } from "./byte-parts.js";
import { createUploadsCalls } from "./raw-calls.js";
import { tusRoutes } from "./tus-routes.js";

/**
 * Chunk bodies and downloads as raw routes: bytes stream between the socket
 * and the uploads service (in this process or another), never through a JSON
 * body. Each first asks the service (same access rules as the JSON routes)
 * whether the caller may touch the upload or file.
 */
export function uploadsRawRoutes(transport: Transport, config?: Config): RawRoute[] {
  const calls = createUploadsCalls(transport, config?.internalToken);
  const { uploads, asCaller } = calls;
  return [
    ...tusRoutes(calls),
    {
      method: "PATCH",
      path: "/v1/files/upload/{upload_id}/{chunk_number}",
      // Checked against the upload's own chunk size below; this only bounds the declared length.
      bodyLimitBytes: Number.MAX_SAFE_INTEGER,
      async handle(ctx) {
        const n = chunkNumber(ctx.params.chunk_number ?? "");
        const status = await uploads.getUploadStatus({ uploadId: ctx.params.upload_id ?? "" }, asCaller(ctx));
        const expected = chunkBytes(status, n);
        const declared = ctx.req.headers["content-length"];
        if (declared !== undefined && BigInt(declared) !== expected) {
          ctx.res.setHeader("connection", "close");
          throw new ConnectError(
            `chunk ${n} must be ${expected} bytes, Content-Length says ${declared}`,
            Code.InvalidArgument,
          );
        }
        try {
          const received = await calls.writeChunk(ctx, status.uploadId, n);
          writeJson(ctx.res, 200, { chunk_number: n, chunks_received: received });
        } catch (error) {
          // A chunk of the wrong length may have been cut off mid-body: what is left of it is no request.
          if (ConnectError.from(error).code === Code.InvalidArgument) ctx.res.setHeader("connection", "close");
          throw error;
        }
      },
    },
    {
      method: "GET",
      path: "/v1/files/{file_id}/content",
      bodyLimitBytes: 0,
      async handle(ctx) {
        const file = await uploads.getFile({ fileId: ctx.params.file_id ?? "" }, asCaller(ctx));
        const size = Number(file.size);
        const range = rangeOf(ctx.req.headers.range, size);
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
        const bytes = await calls.readFile(ctx, file.id, range ?? undefined);
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
