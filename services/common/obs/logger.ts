import pino, { type Logger } from "pino";

/**
 * Paths never written to logs. Credentials arrive in headers and a few body
 * fields; pino replaces them before the line is serialized.
 */
const REDACT_PATHS = [
  "req.headers.authorization",
  'req.headers["x-api-key"]',
  "headers.authorization",
  'headers["x-api-key"]',
  "api_key",
  "apiKey",
  "secret",
  "client_secret",
  "access_token",
  "refresh_token",
  "token",
  "*.api_key",
  "*.apiKey",
  "*.secret",
  "*.token",
  "*.access_token",
  "*.app_secret",
  "*.password",
];

/**
 * The root logger: one JSON object per line with time, level and msg. Lines
 * are written through children that bind `service` (see forService).
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: null,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      messageKey: "msg",
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
    },
    destination,
  );
}

export type { Logger };

/** A service's logger; every line it writes names the service. */
export function forService(root: Logger, service: string): Logger {
  return root.child({ service });
}
