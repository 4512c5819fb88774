/**
 * Why a stream stopped or a send failed. `code` is the error code as the REST
 * surface names it (`unauthenticated`, `permission_denied`,
 * `resource_exhausted`, `deadline_exceeded`, `cancelled`, …), so callers
 * switch on it as they do on RPC errors.
 */
export class StreamError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly details: { closeCode?: number; clientId?: string; retryAfter?: number } = {},
  ) {
    super(message);
    this.name = "StreamError";
  }
}
