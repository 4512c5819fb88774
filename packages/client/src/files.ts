import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { type File, UploadState, type UploadStatus, UploadsService } from "../../../gen/converger/v1/uploads_pb.js";
import type { ClientContext } from "./context.js";
import { canceled, pause, sendChunk } from "./upload-chunk.js";
import { byteLength, describedBy, prepareSource, sliceOf, type UploadBytes } from "./upload-source.js";

const DEFAULT_CONCURRENCY = 3;
// The merge of a small file takes milliseconds, a large one seconds: start quick, then back off.
const STATUS_POLL_FIRST_MS = 100;
const STATUS_POLL_MAX_MS = 2_000;

export interface UploadProgress {
  /** Bytes the server has acknowledged (chunks it stored, those of an earlier try included). */
  loaded: number;
  total: number;
}

/** Every field may be left out or given as undefined (e.g. `uploadId: saved ?? undefined`). */
export interface UploadOptions {
  /** The conversation the file is for; required with a client token. */
  conversationId?: string | undefined;
  /** Defaults to a File's name, else "upload.bin". */
  filename?: string | undefined;
  /** Defaults to a Blob's type, else application/octet-stream. */
  contentType?: string | undefined;
  /** Hex SHA-256 of the whole data, when the caller has it (else computed, see upload-source.ts). */
  sha256?: string | undefined;
  /** Called with non-decreasing `loaded`, from what was already stored up to `total`. */
  onProgress?: ((progress: UploadProgress) => void) | undefined;
  /** Called once the upload id is known, before any chunk is sent: keep it to resume after a reload. */
  onUploadId?: ((uploadId: string) => void) | undefined;
  signal?: AbortSignal | undefined;
  /** Chunks in flight at once (default 3). */
  concurrency?: number | undefined;
  /** Resume this upload of the same data: only the chunks the server lacks are sent. */
  uploadId?: string | undefined;
}

export interface ConvergerFiles {
  /**
   * Uploads `data` through the chunked upload API and resolves with the
   * stored file once the server has merged and checked it. Rejects with a
   * ConnectError (Canceled when `signal` aborts); the upload stays resumable
   * with its id until it expires.
   */
  upload(data: UploadBytes, options?: UploadOptions): Promise<File>;
}

interface Plan {
  uploadId: string;
  chunkSize: number;
  totalChunks: number;
  received: ReadonlySet<number>;
  state: UploadState;
}

export function createFiles(context: ClientContext): ConvergerFiles {
  const uploads = createClient(UploadsService, context.transport);

  async function start(data: UploadBytes, options: UploadOptions, signal: AbortSignal) {
    const { bytes, sha256 } =
      options.sha256 !== undefined ? { bytes: data, sha256: options.sha256 } : await prepareSource(data);
    const own = describedBy(data);
    const started = await uploads.initiateUpload(
      {
        filename: options.filename ?? own.name ?? "upload.bin",
        size: BigInt(byteLength(data)),
        contentType: options.contentType ?? own.type ?? "application/octet-stream",
        sha256: sha256 ?? "",
        conversationId: options.conversationId ?? "",
      },
      { signal },
    );
    const plan: Plan = {
      uploadId: started.uploadId,
      chunkSize: Number(started.chunkSize),
      totalChunks: started.totalChunks,
      received: new Set(),
      state: UploadState.UPLOADING,
    };
    return { bytes, plan };
  }

  async function resume(data: UploadBytes, uploadId: string, signal: AbortSignal) {
    const status = await uploads.getUploadStatus({ uploadId }, { signal });
    if (status.size !== BigInt(byteLength(data))) {
      throw new ConnectError(
        `upload ${uploadId} is ${status.size} bytes, the data ${byteLength(data)}: not the same data`,
        Code.InvalidArgument,
      );
    }
    return { bytes: data, plan: planOf(status) };
  }

  async function settled(uploadId: string, signal: AbortSignal): Promise<UploadStatus> {
    for (let wait = STATUS_POLL_FIRST_MS; ; wait = Math.min(wait * 2, STATUS_POLL_MAX_MS)) {
      const status = await uploads.getUploadStatus({ uploadId }, { signal });
      if (status.status !== UploadState.MERGING) return status;
      await pause(wait, signal);
    }
  }

  return {
    async upload(data, options = {}) {
      const signal = options.signal ?? new AbortController().signal;
      if (signal.aborted) throw canceled(signal);
      const { bytes, plan } =
        options.uploadId !== undefined
          ? await resume(data, options.uploadId, signal)
          : await start(data, options, signal);
      options.onUploadId?.(plan.uploadId);
      let status: UploadStatus | undefined;
      if (plan.state === UploadState.UPLOADING) {
        await sendMissing(context, bytes, plan, options, signal);
        status = await uploads.completeUpload({ uploadId: plan.uploadId }, { signal });
      }
      if (status?.status !== UploadState.COMPLETED) status = await settled(plan.uploadId, signal);
      if (status.status !== UploadState.COMPLETED || status.fileId === undefined) {
        throw new ConnectError(`upload ${plan.uploadId} failed: ${status.error ?? "unknown"}`, Code.FailedPrecondition);
      }
      return uploads.getFile({ fileId: status.fileId }, { signal });
    },
  };
}

function planOf(status: UploadStatus): Plan {
  return {
    uploadId: status.uploadId,
    chunkSize: Number(status.chunkSize),
    totalChunks: status.totalChunks,
    received: new Set(status.chunksReceived),
    state: status.status,
  };
}

/**
 * Sends every chunk the server lacks, at most `concurrency` at a time. The
 * first chunk that fails for good stops the others, and the upload rejects
 * only once none is in flight, so a resume never races a straggler.
 */
async function sendMissing(
  context: ClientContext,
  bytes: UploadBytes,
  plan: Plan,
  options: UploadOptions,
  signal: AbortSignal,
): Promise<void> {
  if (signal.aborted) throw canceled(signal);
  const total = byteLength(bytes);
  const bounds = (n: number) => [(n - 1) * plan.chunkSize, Math.min(n * plan.chunkSize, total)] as const;
  const lengthOf = (n: number) => bounds(n)[1] - bounds(n)[0];
  const missing: number[] = [];
  let loaded = 0;
  for (let n = 1; n <= plan.totalChunks; n++) {
    if (plan.received.has(n)) loaded += lengthOf(n);
    else missing.push(n);
  }
  options.onProgress?.({ loaded, total });

  const stop = new AbortController();
  const onAbort = () => stop.abort(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  let failure: unknown;
  const worker = async () => {
    for (let n = missing.shift(); n !== undefined && !stop.signal.aborted; n = missing.shift()) {
      try {
        await sendChunk(context, {
          uploadId: plan.uploadId,
          chunkNumber: n,
          body: sliceOf(bytes, ...bounds(n)),
          signal: stop.signal,
        });
      } catch (error) {
        failure ??= error;
        stop.abort(error);
        return;
      }
      loaded += lengthOf(n);
      options.onProgress?.({ loaded, total });
    }
  };
  const width = Math.max(1, Math.min(options.concurrency ?? DEFAULT_CONCURRENCY, missing.length));
  await Promise.all(Array.from({ length: width }, worker));
  signal.removeEventListener("abort", onAbort);
  if (signal.aborted) throw canceled(signal);
  if (failure !== undefined) throw failure;
}
