import { Code, ConnectError } from "@connectrpc/connect";
import { codeFromHttpStatus, codeFromString } from "@connectrpc/connect/protocol-connect";
import { createBackoff } from "./backoff.js";
import type { ClientContext } from "./context.js";
import { credentialHeaders } from "./credentials.js";

/** Tries of one chunk before the upload gives up (the caller may still resume it later). */
const CHUNK_ATTEMPTS = 4;
const RETRY_BASE_MS = 250;
// Rate limits count in one-minute windows (every chunk is a state-changing call), so a
// Retry-After never needs more; anything longer is better served by a later resume.
const RETRY_AFTER_CAP_MS = 60_000;

export interface ChunkRequest {
  uploadId: string;
  /** 1-based. */
  chunkNumber: number;
  body: Uint8Array<ArrayBuffer> | Blob;
  signal: AbortSignal;
}

/**
 * PATCHes one raw chunk body, retrying what may pass on a second try (network
 * failures, 408, 429, 5xx) with jittered exponential back-off; a resent chunk
 * replaces itself on the server, so a retry after a lost answer is harmless.
 * Rejects with a ConnectError: the server's code for a refusal, Unavailable
 * when every try failed to get through, Canceled when `signal` aborts.
 */
export async function sendChunk(context: ClientContext, chunk: ChunkRequest): Promise<void> {
  const url = `${context.baseUrl}/v1/files/upload/${encodeURIComponent(chunk.uploadId)}/${chunk.chunkNumber}`;
  let refreshToken = false;
  const backoff = createBackoff({ minBackoffMs: RETRY_BASE_MS, maxBackoffMs: RETRY_BASE_MS * 2 ** CHUNK_ATTEMPTS });
  for (let attempt = 1; ; attempt++) {
    let failure: ConnectError;
    let retryAfterMs = 0;
    try {
      const res = await context.fetch(url, {
        method: "PATCH",
        headers: { ...(await credentialHeaders(context, refreshToken)), "content-type": "application/octet-stream" },
        body: chunk.body,
        signal: chunk.signal,
      });
      if (res.ok) {
        await res.body?.cancel();
        return;
      }
      failure = await errorOf(res);
      // A token may have expired since the upload began: ask for a fresh one, once.
      if (res.status === 401 && context.apiKey === undefined && !refreshToken) {
        refreshToken = true;
        attempt--;
        continue;
      }
      if (!retryable(res.status)) throw failure;
      retryAfterMs = Math.min(Number(res.headers.get("retry-after") ?? 0) * 1000 || 0, RETRY_AFTER_CAP_MS);
    } catch (error) {
      if (chunk.signal.aborted) throw canceled(chunk.signal);
      if (error instanceof ConnectError) throw error;
      // fetch rejects with a TypeError when the request did not get through (refused, reset, DNS).
      failure = new ConnectError(
        `chunk ${chunk.chunkNumber}: ${String(error)}`,
        Code.Unavailable,
        undefined,
        undefined,
        error,
      );
    }
    if (attempt >= CHUNK_ATTEMPTS) throw failure;
    await pause(backoff.next(retryAfterMs), chunk.signal);
  }
}

function retryable(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** The gateway's Connect-style error body (`{code, message}`), else a code from the HTTP status. */
async function errorOf(res: Response): Promise<ConnectError> {
  const text = await res.text().catch(() => "");
  let code = codeFromHttpStatus(res.status);
  let message = `HTTP ${res.status}`;
  try {
    const body: unknown = JSON.parse(text);
    if (typeof body === "object" && body !== null) {
      const fields = body as { code?: unknown; message?: unknown };
      if (typeof fields.code === "string") code = codeFromString(fields.code) ?? code;
      if (typeof fields.message === "string") message = fields.message;
    }
  } catch {
    // Not JSON (a proxy's error page): the status says enough.
  }
  return new ConnectError(message, code);
}

/** Connect clients report an aborted call as Canceled; chunks do the same. */
export function canceled(signal: AbortSignal): ConnectError {
  return ConnectError.from(signal.reason ?? "aborted", Code.Canceled);
}

/** Waits `ms`, or rejects with Canceled as soon as `signal` aborts. */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(canceled(signal));
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(canceled(signal));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
