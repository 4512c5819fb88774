import pino, { type Logger } from "pino";
import { redactObject, scrubText } from "./redact.js";

/**
 * The root logger: one JSON object per line with time, level and msg. Lines
 * are written through children that bind `service` (see forService). Every
 * line, at every level, passes the redaction policy of redact.ts: the logged
 * object, every child's bindings and the message. Errors are serialized there
 * (with their causes), so pino's own err serializer only passes them on.
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  const root = pino(
    {
      level,
      base: null,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }), log: redactObject },
      serializers: {
        err: (value: unknown) => value,
        msg: (value: unknown) => (typeof value === "string" ? scrubText(value) : value),
      },
      messageKey: "msg",
    },
    destination,
  );
  // pino's bindings formatter covers the root's base only, never a child's bindings; children
  // inherit this method, so every generation of children is covered.
  const child = root.child;
  root.child = function (this: Logger, bindings, options) {
    return child.call(this, redactObject(bindings), options);
  } as Logger["child"];
  return root;
}

export type { Logger };

/** A service's logger; every line it writes names the service. */
export function forService(root: Logger, service: string): Logger {
  return root.child({ service });
}
