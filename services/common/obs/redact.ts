import pino from "pino";

/**
 * The one redaction policy of every log line (design.md §8: nothing
 * credential-like is ever logged, at any level). pino's own `redact` only
 * knows fixed paths; credentials reach logs at any depth (a channel config
 * inside an error's cause, a provider's answer quoted in a message), so the
 * whole logged object is walked instead: credential-named keys lose their
 * value, header maps keep only headers known to carry none, and every string
 * (messages and stacks included) is scrubbed of credentials in URLs, query
 * strings, form bodies, quoted JSON, authorization schemes and our own token
 * formats.
 */

const REDACTED = "[redacted]";

// Matched against a key lowercased with `-`, `_` and `.` removed, so `x-api-key`, `apiKey`,
// `hub.verify_token`, `client_secret`, `X-Hub-Signature-256` and `S3_SECRET_KEY` all hit.
const CREDENTIAL_KEY =
  /authorization|cookie|apikey|secret|token|passw|credential|signature|privatekey|accesskey|encryptionkey|sessionid|^(key|sig|auth|kek|dek|pwd)$/;

/** Headers that carry no credential; a header map keeps only these (any other may be a configured secret). */
const SAFE_HEADERS = new Set([
  "accept",
  "accept-encoding",
  "accept-language",
  "access-control-request-headers",
  "access-control-request-method",
  "cache-control",
  "connection",
  "content-encoding",
  "content-length",
  "content-type",
  "date",
  "host",
  "idempotency-key",
  "origin",
  "referer",
  "retry-after",
  "traceparent",
  "tracestate",
  "transfer-encoding",
  "user-agent",
  "x-request-id",
]);
const HEADER_MAP_KEY = /^(headers?|requestheaders|responseheaders|trailers?)$/;

const MAX_DEPTH = 10;

function isCredentialKey(key: string): boolean {
  return CREDENTIAL_KEY.test(key.toLowerCase().replace(/[-_.\s]/g, ""));
}

// name=value in URLs, query strings and form bodies; "name": "value" in quoted JSON.
const PARAM = /([?&;\s,(]|^)([\w.[\]-]{1,64})=([^&\s#;,)"'<>]+)/g;
const JSON_PAIR = /("|\\")([\w.-]{1,64})\1(\s*:\s*)(\\?")((?:(?!\4).){1,4096}?)\4/g;
const HEADER_LINE =
  /\b(authorization|proxy-authorization|x-api-key|cookie|set-cookie|x-hub-signature(?:-256)?)(\s*:\s*)[^\r\n,"]+/gi;
const SCHEME = /\b(Bearer|Basic|Digest)(\s+)[\w.~+/=-]+/gi;
const USERINFO = /(\b[a-z][a-z0-9+.-]*:\/\/)[^/\s@:]*:[^/\s@]*@/gi;
// Our own formats: API keys, refresh tokens, client and channel secrets, console sessions, generated admin
// tokens; JWTs; Telegram bots.
const OWN_TOKEN = /\b(?:cvg|cvr|cvcs|cvs|cva|adm)_[\w-]{8,}/g;
const JWT = /\beyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*/g;
const TELEGRAM_BOT = /\/bot\d+(?::|%3A)[\w-]+/gi;

// Every pattern below needs one of these; most logged strings (ids, paths, names) have none.
const MAY_HOLD_CREDENTIAL = /[=:@]|bearer|basic|digest|cvg_|cvr_|cvcs_|cvs_|cva_|adm_|eyJ|\/bot/i;

/** A string with every credential it shows replaced by [redacted]. */
export function scrubText(text: string): string {
  if (text.length < 8 || !MAY_HOLD_CREDENTIAL.test(text)) return text;
  return text
    .replace(USERINFO, `$1${REDACTED}@`)
    .replace(HEADER_LINE, `$1$2${REDACTED}`)
    .replace(SCHEME, `$1$2${REDACTED}`)
    .replace(JSON_PAIR, (all, q, key, colon, open) =>
      isCredentialKey(key) ? `${q}${key}${q}${colon}${open}${REDACTED}${open}` : all,
    )
    .replace(PARAM, (all, before, key) => (isCredentialKey(key) ? `${before}${key}=${REDACTED}` : all))
    .replace(TELEGRAM_BOT, `/bot${REDACTED}`)
    .replace(OWN_TOKEN, REDACTED)
    .replace(JWT, REDACTED);
}

/** The logged object (or child bindings) as it may be written: a copy, never the caller's object. */
export function redactObject(object: Record<string, unknown>): Record<string, unknown> {
  return walk(object, 0, new WeakSet()) as Record<string, unknown>;
}

function walk(value: unknown, depth: number, seen: WeakSet<object>): unknown {
  if (typeof value === "string") return scrubText(value);
  if (typeof value !== "object" || value === null) return value;
  if (seen.has(value)) return "[circular]";
  if (depth > MAX_DEPTH) return "[too deep]";
  // A raw body may hold anything; its size is what an operator needs.
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return `[${value.byteLength} bytes]`;
  if (value instanceof Date) return value;
  if (value instanceof URL) return scrubText(value.href);
  seen.add(value);
  try {
    if (value instanceof Error) return walk(pino.stdSerializers.err(value), depth, seen);
    if (Array.isArray(value)) return value.map((item) => walk(item, depth + 1, seen));
    if (value instanceof Map) return walk(Object.fromEntries(value), depth, seen);
    if (value instanceof Headers) return headerMap(Object.fromEntries(value), depth, seen);
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      if (isCredentialKey(key)) out[key] = item === undefined || item === null || item === "" ? item : REDACTED;
      else if (HEADER_MAP_KEY.test(key.toLowerCase()) && isPlainObject(item)) out[key] = headerMap(item, depth, seen);
      else out[key] = walk(item, depth + 1, seen);
    }
    return out;
  } finally {
    seen.delete(value);
  }
}

/** Only headers known to be harmless keep their (scrubbed) value: any other may be a channel's configured secret. */
function headerMap(headers: Record<string, unknown>, depth: number, seen: WeakSet<object>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(headers)) {
    out[name] = SAFE_HEADERS.has(name.toLowerCase()) ? walk(value, depth + 1, seen) : REDACTED;
  }
  return out;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
