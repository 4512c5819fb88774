import { Counter, Gauge } from "prom-client";
import { metrics } from "../common/obs/metrics.js";
import { CLOSE } from "./frames.js";

/** What one edge reports at scrape time; a process may run several edges (tests, TLS reloads share one). */
interface EdgeGauges {
  connections(): number;
  subscriptions(): number;
}
const edges = new Set<EdgeGauges>();

// Registered by being made; read at scrape time by its collect().
new Gauge({
  name: "converger_ws_connections",
  help: "Open WebSockets on this edge.",
  registers: [metrics],
  collect() {
    let n = 0;
    for (const edge of edges) n += edge.connections();
    this.set(n);
  },
});

// Registered by being made; read at scrape time by its collect().
new Gauge({
  name: "converger_ws_subscriptions",
  help: "Conversation and tenant subscriptions held by sockets on this edge.",
  registers: [metrics],
  collect() {
    let n = 0;
    for (const edge of edges) n += edge.subscriptions();
    this.set(n);
  },
});

export const wsFramesTotal = new Counter({
  name: "converger_ws_frames_total",
  help: "WebSocket frames received (in) and sent (out, fan-out counted per recipient).",
  labelNames: ["direction"] as const,
  registers: [metrics],
});

const CLOSE_REASONS = [
  "normal",
  "going_away",
  "bad_token",
  "forbidden",
  "token_expired",
  "rate_limited",
  "too_big",
  "backpressure",
  "other",
] as const;
type CloseReason = (typeof CLOSE_REASONS)[number];

const wsClosesTotal = new Counter({
  name: "converger_ws_closes_total",
  help: "Closed WebSockets by reason.",
  labelNames: ["reason"] as const,
  registers: [metrics],
});

const wsBackpressureDropsTotal = new Counter({
  name: "converger_ws_backpressure_drops_total",
  help: "Sockets closed because they fell more than the backpressure limit behind.",
  registers: [metrics],
});

for (const direction of ["in", "out"]) wsFramesTotal.inc({ direction }, 0);
for (const reason of CLOSE_REASONS) wsClosesTotal.inc({ reason }, 0);

const REASON_OF_CODE = new Map<number, CloseReason>([
  [1000, "normal"],
  [CLOSE.goingAway, "going_away"],
  [CLOSE.tooBig, "too_big"],
  [CLOSE.badToken, "bad_token"],
  [CLOSE.forbidden, "forbidden"],
  [CLOSE.tokenExpired, "token_expired"],
  [CLOSE.rateLimited, "rate_limited"],
]);
// uWS reports a frame over maxPayloadLength as an abrupt close (1006) with this message.
const TOO_BIG_MESSAGE = "Received too big message";

/** Counts one close; `backpressured` when a send to the socket was dropped over the limit (uWS then closes it with 1006). */
export function countClose(code: number, message: ArrayBuffer, backpressured: boolean): void {
  let reason = REASON_OF_CODE.get(code) ?? "other";
  if (backpressured) reason = "backpressure";
  else if (code === 1006 && Buffer.from(message).toString() === TOO_BIG_MESSAGE) reason = "too_big";
  wsClosesTotal.inc({ reason });
  if (backpressured) wsBackpressureDropsTotal.inc();
}

/**
 * Called as a socket leaves a topic. A publish over the limit closes the
 * socket inside uWS (no send result of ours says so): it leaves its topics
 * first, still that far behind, and the close handler can no longer read the buffer.
 */
export function markIfLeftBehind(
  ws: { getBufferedAmount(): number; getUserData(): { backpressured: boolean } },
  limitBytes: number,
): void {
  try {
    if (ws.getBufferedAmount() > limitBytes) ws.getUserData().backpressured = true;
  } catch {
    // After any other close uWS reports the leaves on the closed socket, which refuses every access:
    // such a socket was not dropped for backpressure.
  }
}

/** Adds an edge to the gauges until the returned function is called. */
export function reportEdge(gauges: EdgeGauges): () => void {
  edges.add(gauges);
  return () => void edges.delete(gauges);
}
