import { readEnvelope } from "../common/events/envelopes.js";
import type { LogRecord } from "../common/events/event-log.js";
import type { Logger } from "../common/obs/logger.js";
import type { BlobStore } from "./blob-store.js";
import type { UploadStore } from "./store.js";

/**
 * The merge job (consumer of `upload.completed`): joins the chunks, checks
 * size and declared SHA-256, points an identical file of the tenant at the
 * existing object instead of keeping a second copy, then deletes the chunks.
 * Runs again harmlessly after a crash (the log delivers at least once): only
 * an upload still MERGING is worked, and the joined file is written under a
 * fresh key before anything refers to it.
 */
export function createMergeHandler(deps: { uploads: UploadStore; blobs: BlobStore; log: Logger }) {
  async function failAndClean(uploadId: string, reason: string): Promise<void> {
    await deps.uploads.fail(uploadId, reason);
    await deps.blobs.removeUpload(uploadId);
  }

  return async function merge(record: LogRecord): Promise<void> {
    const envelope = readEnvelope(record);
    if (envelope?.$typeName !== "converger.v1.UploadCompleted" || !envelope.uploadId) return;
    const { uploadId } = envelope;
    const upload = await deps.uploads.getById(uploadId);
    if (!upload || upload.status === "UPLOADING") return;
    // Already ended (a repeated event, or a crash after the end): only the chunks may be left.
    if (upload.status !== "MERGING") return deps.blobs.removeUpload(upload.id);
    const joined = await deps.blobs.merge(upload.id, upload.total_chunks).catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") return undefined; // a chunk vanished from storage: no retry brings it back
      throw error;
    });
    if (!joined) return failAndClean(upload.id, "a chunk is missing from storage");
    if (BigInt(joined.size) !== BigInt(upload.size)) {
      await deps.blobs.removeFile(joined.key);
      return failAndClean(upload.id, `merged ${joined.size} bytes, declared ${upload.size}`);
    }
    if (upload.declared_sha256 && upload.declared_sha256 !== joined.sha256) {
      await deps.blobs.removeFile(joined.key);
      return failAndClean(upload.id, `SHA-256 mismatch: declared ${upload.declared_sha256}, got ${joined.sha256}`);
    }
    const same = await deps.uploads.identical(upload.tenant_id, joined.sha256);
    const storageKey = same && (await deps.blobs.fileExists(same.storage_key)) ? same.storage_key : joined.key;
    if (storageKey !== joined.key) await deps.blobs.removeFile(joined.key);
    const stored = await deps.uploads.finish(upload, { storageKey, size: BigInt(joined.size), sha256: joined.sha256 });
    if (!stored && storageKey === joined.key) await deps.blobs.removeFile(joined.key); // another run finished it
    await deps.blobs.removeUpload(upload.id);
    deps.log.info(
      { uploadId: upload.id, bytes: joined.size, deduplicated: storageKey !== joined.key },
      "upload merged",
    );
  };
}
