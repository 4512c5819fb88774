import { join } from "node:path";
import type { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { Code, ConnectError } from "@connectrpc/connect";
import { UploadsService } from "../../gen/converger/v1/uploads_pb.js";
import { createAccessInterceptor } from "../common/access/access.js";
import { type Consumer, joinUntilDone } from "../common/events/event-log.js";
import { createOutboxRelay } from "../common/events/outbox-relay.js";
import { forService } from "../common/obs/logger.js";
import { withHttpStatus } from "../common/rpc/errors.js";
import { createErrorInterceptor } from "../common/rpc/log-interceptor.js";
import { type MigrationSet, type ModuleDeps, requirePool, type ServiceModule } from "../common/service.js";
import { type BlobStore, ChecksumMismatch, ChunkSizeError, createLocalBlobStore, PartNotHere } from "./blob-store.js";
import { chunkBytes } from "./byte-parts.js";
import { checkFirstBytes } from "./content.js";
import { createConversationOwner } from "./conversation-owner.js";
import { uploadsImpl } from "./handlers.js";
import { createMergeHandler } from "./merge.js";
import { createS3BlobStore } from "./s3-store.js";
import { createUploadStore, UPLOADS_TOPIC, type UploadRow } from "./store.js";
import { transferImpl } from "./transfer-handlers.js";

export const uploadsMigrations: MigrationSet = {
  owner: "uploads",
  dir: fileURLToPath(new URL("./migrations", import.meta.url)),
};

const MERGE_CONSUMER = "uploads-merge";

export interface UploadsModule extends ServiceModule {
  maxUploadBytes: number;
  /** Appends bytes at `offset` to a streamed (tus) upload; finishing it queues the merge. */
  appendStream(
    uploadId: string,
    offset: bigint,
    body: Readable,
    checksum?: { algorithm: string; digest: Buffer },
  ): Promise<UploadRow>;
  /** Ends an upload still in progress (tus termination): its row and its bytes. */
  terminate(uploadId: string): Promise<void>;
  /** Streams chunk n into storage (checking number, size and, for the first, the content) and records it. */
  acceptChunk(uploadId: string, n: number, body: Readable): Promise<UploadRow>;
  storageKey(fileId: string): Promise<string>;
  /** The bytes of a stored file (opened before any header is sent, so a missing object is still a clean error). */
  openFile(key: string, range?: { start: number; end: number }): Promise<Readable>;
}

/**
 * Resumable uploads (design.md §3 Files): chunks in any order, merged by a job
 * that the outbox triggers through the event log, verified, deduplicated per
 * tenant, and collected when abandoned. Blobs on local disk under DATA_DIR, or
 * in S3/MinIO with S3_ENDPOINT (s3-store.ts).
 */
export function createUploadsModule(deps: ModuleDeps): UploadsModule {
  const { config } = deps;
  const pool = requirePool(deps);
  const log = forService(deps.log, "uploads");
  const uploads = createUploadStore(pool);
  const local = join(config.dataDir, "blobs");
  const blobs = whenReady(
    config.s3 ? createS3BlobStore(config.s3, join(local, "staging")) : Promise.resolve(createLocalBlobStore(local)),
  );
  const relay = createOutboxRelay({
    pool,
    table: "upload_outbox",
    outbox: "uploads",
    log,
    eventLog: deps.eventLog,
    retentionHours: config.outboxRetentionHours,
  });
  const merge = createMergeHandler({ uploads, blobs, log });
  const conversationOwner = createConversationOwner(deps.transportFor("conversations"), config.internalToken);
  let stopped = false;
  const consumer: Consumer = {
    group: MERGE_CONSUMER,
    topic: UPLOADS_TOPIC,
    handle: merge,
    async deadLetter(record, error) {
      // The merge kept failing on something other than the upload's own bytes: say so on the upload.
      const uploadId = (record.payload as { upload_id?: string })?.upload_id;
      log.error({ err: error, uploadId }, "merge gave up");
      if (uploadId) await uploads.fail(uploadId, `merge failed: ${(error as Error).message ?? error}`);
    },
  };
  // Registered now, before any module starts: the in-process relay starts with this module.
  void joinUntilDone(deps.eventLog, consumer, log, () => stopped);
  const interceptors = [createErrorInterceptor(log), createAccessInterceptor(deps.access)];
  let gcTimer: NodeJS.Timeout | undefined;
  const appending = new Set<string>();

  /** Removes uploads left UPLOADING past UPLOAD_EXPIRY_HOURS, and chunk folders no upload owns. */
  async function collectGarbage(): Promise<number> {
    let removed = 0;
    for (const upload of await uploads.abandoned(config.uploadExpiryHours)) {
      await blobs.removeUpload(upload.id);
      await uploads.remove(upload.id);
      removed++;
    }
    // Chunks nobody will merge: of uploads gone, or ended (a chunk that lost a race with complete).
    const stored = await blobs.uploadsWithChunks();
    const ended = new Set(await uploads.finishedWithChunks(stored));
    for (const uploadId of stored) {
      if (ended.has(uploadId) || !(await uploads.exists(uploadId))) await blobs.removeUpload(uploadId);
    }
    return removed;
  }

  async function append(
    uploadId: string,
    offset: bigint,
    body: Readable,
    checksum?: { algorithm: string; digest: Buffer },
  ): Promise<UploadRow> {
    const upload = await uploads.getById(uploadId);
    if (!upload) throw new ConnectError("upload not found", Code.NotFound);
    if (upload.tus_offset === null)
      throw withHttpStatus("not a streamed upload: send numbered chunks", Code.InvalidArgument, 400);
    if (BigInt(upload.tus_offset) !== offset) {
      throw withHttpStatus(`Upload-Offset must be ${upload.tus_offset}`, Code.FailedPrecondition, 409);
    }
    if (upload.status !== "UPLOADING")
      throw withHttpStatus(`the upload is ${upload.status.toLowerCase()}`, Code.FailedPrecondition, 409);
    const inspect = (head: Buffer) => {
      const wrong = checkFirstBytes(upload.content_type, head);
      if (wrong) throw new UnsupportedContent(wrong);
    };
    let end: number;
    try {
      end = await blobs.appendPart(uploadId, Number(offset), body, Number(BigInt(upload.size) - offset), {
        checksum,
        inspect,
      });
    } catch (error) {
      if (error instanceof UnsupportedContent) {
        await uploads.fail(uploadId, error.message);
        throw withHttpStatus(error.message, Code.InvalidArgument, 415);
      }
      if (error instanceof ChecksumMismatch) throw withHttpStatus(error.message, Code.InvalidArgument, 460);
      if (error instanceof ChunkSizeError) throw withHttpStatus(error.message, Code.InvalidArgument, 413);
      if (error instanceof PartNotHere) throw withHttpStatus(error.message, Code.FailedPrecondition, 409);
      throw error;
    }
    const row = await uploads.advance(uploadId, offset, BigInt(end));
    if (!row) throw withHttpStatus("another request moved the upload on", Code.FailedPrecondition, 409);
    if (BigInt(end) < BigInt(row.size)) return row;
    const completed = await uploads.complete(row.tenant_id, row.id);
    relay.wake();
    return completed?.row ?? row;
  }

  const module: UploadsModule & { collectGarbage: typeof collectGarbage } = {
    name: "uploads",
    services: [UploadsService],
    maxUploadBytes: config.uploadMaxBytes,
    routes(router) {
      const rpcs = uploadsImpl({ uploads, config, onMergeQueued: relay.wake, conversationOwner });
      router.service(UploadsService, { ...rpcs, ...transferImpl(module) }, { interceptors });
    },
    async start() {
      relay.start();
      gcTimer = setInterval(
        () => void collectGarbage().catch((e) => log.warn({ err: e }, "upload collection failed")),
        config.uploadGcIntervalMinutes * 60_000,
      );
      gcTimer.unref();
    },
    async ready() {
      await pool.query("SELECT 1");
      await blobs.fileExists("readiness-probe");
    },
    async stop() {
      stopped = true;
      clearInterval(gcTimer);
      await relay.stop();
    },
    collectGarbage,

    async acceptChunk(uploadId, n, body) {
      const upload = await uploads.getById(uploadId);
      if (!upload) throw new ConnectError("upload not found", Code.NotFound);
      const size = chunkBytes(
        { size: BigInt(upload.size), chunkSize: BigInt(upload.chunk_size), totalChunks: upload.total_chunks },
        n,
      );
      if (upload.status !== "UPLOADING") {
        throw new ConnectError(
          `the upload is ${upload.status.toLowerCase()}; it takes no chunks`,
          Code.FailedPrecondition,
        );
      }
      const inspect =
        n === 1
          ? (head: Buffer) => {
              const wrong = checkFirstBytes(upload.content_type, head);
              if (wrong) throw new UnsupportedContent(wrong);
            }
          : undefined;
      try {
        await blobs.writeChunk(uploadId, n, body, Number(size), inspect);
      } catch (error) {
        if (error instanceof ChunkSizeError) throw new ConnectError(error.message, Code.InvalidArgument);
        if (error instanceof UnsupportedContent) {
          await uploads.fail(uploadId, error.message);
          await blobs.removeUpload(uploadId);
          throw withHttpStatus(error.message, Code.InvalidArgument, 415);
        }
        throw error;
      }
      const marked = await uploads.markChunk(uploadId, n);
      if (!marked) throw new ConnectError("the upload stopped taking chunks", Code.FailedPrecondition);
      return marked;
    },

    async appendStream(uploadId, offset, body, checksum) {
      // One append at a time per upload here: a retried PATCH racing the first must not interleave with it.
      if (appending.has(uploadId))
        throw withHttpStatus("another PATCH is writing this upload", Code.FailedPrecondition, 409);
      appending.add(uploadId);
      try {
        return await append(uploadId, offset, body, checksum);
      } finally {
        appending.delete(uploadId);
      }
    },

    async terminate(uploadId) {
      const upload = await uploads.getById(uploadId);
      if (upload?.status === "MERGING" || upload?.status === "COMPLETED") {
        throw withHttpStatus(`the upload is ${upload.status.toLowerCase()}`, Code.FailedPrecondition, 409);
      }
      await blobs.removeUpload(uploadId);
      await uploads.removeUnfinished(uploadId);
    },

    async storageKey(fileId) {
      const key = await uploads.storageKeyOf(fileId);
      if (!key) throw new ConnectError("file not found", Code.NotFound);
      return key;
    },

    openFile: (key, range) => blobs.read(key, range),
  };
  return module;
}

class UnsupportedContent extends Error {}

/** A store usable at once whose calls wait until it is ready (S3 checks its bucket first). */
function whenReady(store: Promise<BlobStore>): BlobStore {
  store.catch(() => undefined); // surfaced by the first call that needs it
  return new Proxy({} as BlobStore, {
    // Not a thenable: awaiting the store itself must not call into it.
    get(_target, name) {
      if (name === "then") return undefined;
      return async (...args: unknown[]) => {
        const ready = (await store) as unknown as Record<string | symbol, (...a: unknown[]) => unknown>;
        return ready[name]?.(...args);
      };
    },
  });
}
