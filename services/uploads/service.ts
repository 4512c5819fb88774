import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { Code, ConnectError } from "@connectrpc/connect";
import { UploadsService } from "../../gen/converger/v1/uploads_pb.js";
import { createAccessInterceptor } from "../common/access.js";
import { HTTP_STATUS_HEADER } from "../common/context.js";
import { createErrorInterceptor } from "../common/log-interceptor.js";
import { forService } from "../common/logger.js";
import { createOutboxRelay } from "../common/outbox-relay.js";
import { type MigrationSet, type ModuleDeps, requirePool, type ServiceModule } from "../common/service.js";
import { createLocalBlobStore } from "./blob-store.js";
import { checkFirstBytes } from "./content.js";
import { createMergeHandler } from "./merge.js";
import { uploadsImpl } from "./routes.js";
import { createUploadStore, UPLOADS_TOPIC, type UploadRow } from "./store.js";

export const uploadsMigrations: MigrationSet = {
  owner: "uploads",
  dir: fileURLToPath(new URL("./migrations", import.meta.url)),
};

const MERGE_CONSUMER = "uploads-merge";

export interface UploadsModule extends ServiceModule {
  /** Streams chunk n into storage (checking size and, for the first, the content) and records it. */
  acceptChunk(uploadId: string, n: number, body: Readable, size: number): Promise<UploadRow>;
  storageKey(fileId: string): Promise<string>;
  streamFile(key: string, into: Writable, range?: { start: number; end: number }): Promise<void>;
}

/**
 * Resumable uploads (design.md §3 Files): chunks in any order, merged by a job
 * that the outbox triggers through the event log, verified, deduplicated per
 * tenant, and collected when abandoned. Blobs on local disk under DATA_DIR.
 */
export function createUploadsModule(deps: ModuleDeps): UploadsModule {
  const { config } = deps;
  const pool = requirePool(deps);
  const log = forService(deps.log, "uploads");
  const uploads = createUploadStore(pool);
  const blobs = createLocalBlobStore(join(config.dataDir, "blobs"));
  const relay = createOutboxRelay({
    pool,
    table: "upload_outbox",
    log,
    eventLog: deps.eventLog,
    retentionHours: config.outboxRetentionHours,
  });
  const merge = createMergeHandler({ uploads, blobs, log });
  const consuming = deps.eventLog.consume({
    group: MERGE_CONSUMER,
    topic: UPLOADS_TOPIC,
    handle: merge,
    async deadLetter(record, error) {
      // The merge kept failing on something other than the upload's own bytes: say so on the upload.
      const uploadId = (record.payload as { upload_id?: string })?.upload_id;
      log.error({ err: error, uploadId }, "merge gave up");
      if (uploadId) await uploads.fail(uploadId, `merge failed: ${(error as Error).message ?? error}`);
    },
  });
  consuming.catch((error) => log.error({ err: error }, "cannot join the merge consumer group"));
  const interceptors = [createErrorInterceptor(log), createAccessInterceptor(deps.access)];
  let gcTimer: NodeJS.Timeout | undefined;

  /** Removes uploads left UPLOADING past UPLOAD_EXPIRY_HOURS, and chunk folders no upload owns. */
  async function collectGarbage(): Promise<number> {
    let removed = 0;
    for (const upload of await uploads.abandoned(config.uploadExpiryHours)) {
      await blobs.removeUpload(upload.id);
      await uploads.remove(upload.id);
      removed++;
    }
    for (const uploadId of await blobs.uploadsWithChunks()) {
      if (!(await uploads.exists(uploadId))) await blobs.removeUpload(uploadId);
    }
    return removed;
  }

  const module: UploadsModule & { collectGarbage: typeof collectGarbage } = {
    name: "uploads",
    services: [UploadsService],
    routes(router) {
      router.service(UploadsService, uploadsImpl({ uploads, config, onMergeQueued: relay.wake }), { interceptors });
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
    },
    async stop() {
      clearInterval(gcTimer);
      await relay.stop();
    },
    collectGarbage,

    async acceptChunk(uploadId, n, body, size) {
      const upload = await uploads.getById(uploadId);
      if (!upload) throw new ConnectError("upload not found", Code.NotFound);
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
        await blobs.writeChunk(uploadId, n, body, size, inspect);
      } catch (error) {
        if (error instanceof UnsupportedContent) {
          await uploads.fail(uploadId, error.message);
          await blobs.removeUpload(uploadId);
          const refused = new ConnectError(error.message, Code.InvalidArgument);
          refused.metadata.set(HTTP_STATUS_HEADER, "415");
          throw refused;
        }
        throw error;
      }
      const marked = await uploads.markChunk(uploadId, n);
      if (!marked) throw new ConnectError("the upload stopped taking chunks", Code.FailedPrecondition);
      return marked;
    },

    async storageKey(fileId) {
      const key = await uploads.storageKeyOf(fileId);
      if (!key) throw new ConnectError("file not found", Code.NotFound);
      return key;
    },

    async streamFile(key, into, range) {
      await pipeline(blobs.read(key, range), into);
    },
  };
  return module;
}

class UnsupportedContent extends Error {}
