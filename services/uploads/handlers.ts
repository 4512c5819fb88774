import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { type File, UploadState, type UploadStatus, type UploadsService } from "../../gen/converger/v1/uploads_pb.js";
import { kPrincipal, type Principal } from "../common/access/context.js";
import type { Config } from "../common/config.js";
import { invalidField, notFound, withHttpStatus } from "../common/rpc/errors.js";
import { DEFAULT_ALLOWED_TYPES, mediaType, sanitizeFilename } from "./content.js";
import type { ConversationOwner } from "./conversation-owner.js";
import type { FileRow, UploadRow, UploadStore } from "./store.js";
import type { TransferRpcs } from "./transfer-handlers.js";

const STATE: Record<UploadRow["status"], UploadState> = {
  UPLOADING: UploadState.UPLOADING,
  MERGING: UploadState.MERGING,
  COMPLETED: UploadState.COMPLETED,
  FAILED: UploadState.FAILED,
};

export interface UploadsDeps {
  uploads: UploadStore;
  config: Config;
  /** Called after an upload moved to MERGING (wakes the relay). */
  onMergeQueued: () => void;
  conversationOwner: ConversationOwner;
}

/** Who is uploading, as stored with the upload; end users see only their own uploads. */
function uploaderOf(principal: Principal): { tenantId: string; uploader: string; conversationId?: string } {
  switch (principal.kind) {
    case "api_key":
      return { tenantId: principal.tenantId, uploader: "key" };
    case "oauth_client":
      return { tenantId: principal.tenantId, uploader: `client:${principal.clientId}` };
    case "end_user":
      return {
        tenantId: principal.tenantId,
        uploader: `user:${principal.userId}`,
        conversationId: principal.conversationId,
      };
    default:
      throw new ConnectError("not allowed", Code.PermissionDenied);
  }
}

/** The caller's upload: another tenant's, or another end user's, is not found. */
async function visibleUpload(uploads: UploadStore, ctx: HandlerContext, id: string): Promise<UploadRow> {
  const caller = uploaderOf(ctx.values.get(kPrincipal));
  const row = await uploads.get(caller.tenantId, id);
  if (!row || (caller.uploader.startsWith("user:") && row.uploader !== caller.uploader)) throw notFound("upload");
  return row;
}

/** The caller's tenant's file; end users see only files uploaded into their conversation. */
async function visibleFile(uploads: UploadStore, ctx: HandlerContext, id: string): Promise<FileRow> {
  const caller = uploaderOf(ctx.values.get(kPrincipal));
  const file = await uploads.file(caller.tenantId, id);
  if (!file || (caller.conversationId !== undefined && file.conversation_id !== caller.conversationId)) {
    throw notFound("file");
  }
  return file;
}

function statusMessage(row: UploadRow, expiryHours: number): UploadStatus {
  const received = row.received.flatMap((got, i) => (got ? [i + 1] : []));
  return {
    $typeName: "converger.v1.UploadStatus",
    uploadId: row.id,
    status: STATE[row.status],
    totalChunks: row.total_chunks,
    chunksReceived: received,
    percent: row.total_chunks === 0 ? 0 : Math.round((10_000 * received.length) / row.total_chunks) / 100,
    fileId: row.file_id ?? undefined,
    error: row.error ?? undefined,
    chunkSize: BigInt(row.chunk_size),
    size: BigInt(row.size),
    offset: row.tus_offset === null ? undefined : BigInt(row.tus_offset),
    expiresAt:
      row.status === "UPLOADING"
        ? timestampFromDate(new Date(row.updated_at.getTime() + expiryHours * 3_600_000))
        : undefined,
  };
}

function fileMessage(row: FileRow): File {
  return {
    $typeName: "converger.v1.File",
    id: row.id,
    filename: row.filename,
    size: BigInt(row.size),
    contentType: row.content_type,
    sha256: row.sha256,
    createdAt: timestampFromDate(row.created_at),
  };
}

/** The public RPCs (the byte-carrying internal ones are transfer-handlers.ts). */
export function uploadsImpl(deps: UploadsDeps): Omit<ServiceImpl<typeof UploadsService>, keyof TransferRpcs> {
  const { config } = deps;
  const allowed = new Set(config.uploadAllowedTypes.length > 0 ? config.uploadAllowedTypes : DEFAULT_ALLOWED_TYPES);
  return {
    async initiateUpload(req, ctx) {
      const caller = uploaderOf(ctx.values.get(kPrincipal));
      if (caller.conversationId !== undefined) {
        if (!req.conversationId) throw invalidField("conversation_id", "is required for client tokens");
        if (req.conversationId !== caller.conversationId) throw notFound("conversation");
      } else if (req.conversationId) {
        // Another tenant's conversation answers as a missing one (design.md §2).
        const owner = await deps.conversationOwner(req.conversationId, ctx.signal);
        if (owner !== caller.tenantId) throw notFound("conversation");
      }
      const filename = sanitizeFilename(req.filename);
      if (req.size > BigInt(config.uploadMaxBytes)) {
        throw invalidField("size", `must be at most ${config.uploadMaxBytes} bytes`);
      }
      const contentType = mediaType(req.contentType);
      if (!allowed.has(contentType)) throw invalidField("content_type", "is not an allowed type");
      if (req.sha256 && !/^[0-9a-fA-F]{64}$/.test(req.sha256)) throw invalidField("sha256", "must be 64 hex digits");
      // A streamed upload is one part growing by appends; a chunked one has numbered parts.
      const chunkSize = req.streamed ? req.size : BigInt(config.uploadChunkBytes);
      const totalChunks = Number((req.size + chunkSize - 1n) / chunkSize);
      const created = await deps.uploads.create(
        {
          tenantId: caller.tenantId,
          uploader: caller.uploader,
          conversationId: req.conversationId || null,
          filename,
          size: req.size,
          contentType,
          declaredSha256: req.sha256 ? req.sha256.toLowerCase() : null,
          chunkSize,
          totalChunks,
          streamed: req.streamed,
        },
        BigInt(config.tenantStorageQuotaBytes),
      );
      if (created === "over_quota") {
        throw withHttpStatus("the tenant's storage quota would be exceeded", Code.ResourceExhausted, 413);
      }
      return { uploadId: created.id, chunkSize, totalChunks };
    },

    async getUploadStatus(req, ctx) {
      return statusMessage(await visibleUpload(deps.uploads, ctx, req.uploadId), config.uploadExpiryHours);
    },

    async completeUpload(req, ctx) {
      const row = await visibleUpload(deps.uploads, ctx, req.uploadId);
      const result = await deps.uploads.complete(row.tenant_id, row.id);
      if (!result) throw notFound("upload");
      if (result.missing.length > 0) {
        throw new ConnectError(`missing chunks: ${result.missing.join(",")}`, Code.FailedPrecondition);
      }
      if (result.row.status === "FAILED") throw new ConnectError("the upload failed", Code.FailedPrecondition);
      deps.onMergeQueued();
      return statusMessage(result.row, config.uploadExpiryHours);
    },

    async describeFiles(req) {
      const rows = await deps.uploads.filesOf(req.tenantId, req.fileIds, req.conversationId || undefined);
      return { files: rows.map(fileMessage) };
    },

    async getFile(req, ctx) {
      return fileMessage(await visibleFile(deps.uploads, ctx, req.fileId));
    },
  };
}
