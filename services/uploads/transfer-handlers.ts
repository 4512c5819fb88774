import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  type AppendTarget,
  AppendTargetSchema,
  type ChunkTarget,
  ChunkTargetSchema,
  type UploadsService,
} from "../../gen/converger/v1/uploads_pb.js";
import { validateMessage } from "../common/rpc/validation.js";
import { headAndBody, partsOf } from "./byte-parts.js";
import type { UploadsModule } from "./service.js";

export type TransferRpcs = Pick<
  ServiceImpl<typeof UploadsService>,
  "writeChunk" | "appendUpload" | "terminateUpload" | "readFile" | "getUploadLimits"
>;

/**
 * The internal RPCs that carry bytes between the gateway's raw routes and
 * this service's storage. The gateway has already asked the public RPCs,
 * with the caller's credentials, whether the caller may touch the upload or
 * file; these take its word (internal token only).
 */
export function transferImpl(module: UploadsModule): TransferRpcs {
  return {
    async writeChunk(requests) {
      const { head, body } = await headAndBody<ChunkTarget>(requests, "target");
      validateMessage(ChunkTargetSchema, head);
      const row = await module.acceptChunk(head.uploadId, head.chunkNumber, body);
      return { chunksReceived: row.received.flatMap((got, i) => (got ? [i + 1] : [])) };
    },

    async appendUpload(requests) {
      const { head, body } = await headAndBody<AppendTarget>(requests, "target");
      validateMessage(AppendTargetSchema, head);
      const checksum = head.checksum && {
        algorithm: head.checksum.algorithm,
        digest: Buffer.from(head.checksum.digest),
      };
      const row = await module.appendStream(head.uploadId, head.offset, body, checksum);
      return { offset: BigInt(row.tus_offset ?? head.offset) };
    },

    async terminateUpload(req) {
      await module.terminate(req.uploadId);
      return {};
    },

    async *readFile(req, ctx: HandlerContext) {
      const key = await module.storageKey(req.fileId);
      const range = req.range && { start: Number(req.range.start), end: Number(req.range.end) };
      const bytes = await module.openFile(key, range);
      // A caller gone mid-download may never ask for the next part: the file must not stay open until then.
      const close = () => bytes.destroy();
      ctx.signal.addEventListener("abort", close, { once: true });
      try {
        yield { part: { case: "opened", value: { range: req.range } } };
        for await (const data of partsOf(bytes)) yield { part: { case: "data", value: data } };
      } finally {
        ctx.signal.removeEventListener("abort", close);
        bytes.destroy();
      }
    },

    async getUploadLimits() {
      return { maxUploadBytes: BigInt(module.maxUploadBytes) };
    },
  };
}
