import { randomUUID } from "node:crypto";

const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** Keeps a caller's W3C trace context, or starts a trace, so every log line can carry trace_id. */
export function traceparentOf(incoming: string | string[] | undefined): string {
  if (typeof incoming === "string" && TRACEPARENT.test(incoming)) return incoming;
  // randomUUID draws from a pooled buffer; two randomBytes calls per request showed in profiles.
  const hex = randomUUID().replaceAll("-", "") + randomUUID().replaceAll("-", "");
  return `00-${hex.slice(0, 32)}-${hex.slice(32, 48)}-01`;
}

/** The trace id of a traceparent header, for log lines. */
export function traceIdOf(traceparent: string | string[] | null | undefined): string | undefined {
  return typeof traceparent === "string" ? TRACEPARENT.exec(traceparent)?.[1] : undefined;
}
