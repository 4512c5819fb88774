// The edge's port when the caller names no URL: WS_PORT's default (design.md §6).
const DEFAULT_EDGE_PORT = "8081";

/**
 * The URL of one connection attempt: the caller's (a `stream_url`) or the
 * gateway's host on the edge port, with the resume watermark and the tenant
 * feed. A `token` already in a stream_url stays only when the stream has no
 * token of its own: it then rides in the subprotocol instead.
 */
export function edgeUrl(
  baseUrl: string,
  options: { url?: string; tenantId?: string },
  connection: { watermark: string; token: string | undefined },
): string {
  const url = new URL(options.url ?? baseUrl);
  if (!options.url) {
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.port = DEFAULT_EDGE_PORT;
    url.pathname = "/ws";
    url.search = "";
  }
  if (connection.token) url.searchParams.delete("token");
  url.searchParams.set("watermark", connection.watermark);
  if (options.tenantId) url.searchParams.set("tenant", options.tenantId);
  return url.toString();
}
