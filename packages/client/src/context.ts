import type { Transport } from "@connectrpc/connect";

/**
 * What the parts of the client (RPC clients, stream, files) share: built once
 * by `new Converger(options)` in converger.ts.
 */
export interface ClientContext {
  /** The gateway's base URL, without a trailing slash (http(s)://host:port). */
  baseUrl: string;
  /** connect-web transport on the gateway, credentials added by one interceptor. */
  transport: Transport;
  /**
   * The bearer token to present (a static `token`, or `getToken()`; `refresh`
   * asks getToken for a new one); undefined when the client uses an API key.
   */
  token(refresh?: boolean): Promise<string | undefined>;
  /** The API key, when the client uses one. */
  apiKey: string | undefined;
  /** The WebSocket class: the global one in browsers, `ws`'s in Node 20. */
  WebSocket: typeof globalThis.WebSocket | undefined;
  fetch: typeof globalThis.fetch;
}
