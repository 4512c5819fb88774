import { randomBytes } from "node:crypto";

const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** Keeps a caller's W3C trace context, or starts a trace, so every log line can carry trace_id. */
export function traceparentOf(incoming: string | string[] | undefined): string {
  if (typeof incoming === "string" && TRACEPARENT.test(incoming)) return incoming;
  return `00-${randomBytes(16).toString("hex")}-${randomBytes(8).toString("hex")}-01`;
}

/** The trace id of a traceparent header, for log lines. */
export function traceIdOf(traceparent: string | string[] | null | undefined): string | undefined {
  return typeof traceparent === "string" ? TRACEPARENT.exec(traceparent)?.[1] : undefined;
}
