import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import type { ConfigSpec, FieldKind } from "../channel-adapters/index.js";
import { adapterOf } from "../channel-adapters/index.js";
import { isNonPublicHostname } from "../common/access/address-policy.js";
import { invalidField } from "../common/rpc/errors.js";

export const REDACTED = "[redacted]";

const METHODS = new Set(["POST", "PUT", "PATCH"]);
const MAX_VALUE_LENGTH = 2048;
// Pacing above this is no pacing: a channel wanting more sets none.
const MAX_RATE_PER_SECOND = 10_000;

export interface ConfigPolicy {
  /** WEBHOOK_ALLOW_PRIVATE: accept loopback and private hosts (tests, on-prem). */
  allowPrivate: boolean;
}

/** Checks a config against its type's spec and returns it normalized; errors name `config.<field>`. */
export function validateChannelConfig(type: string, config: JsonObject, policy: ConfigPolicy): JsonObject {
  const spec = adapterOf(type)?.config;
  if (!spec) throw invalidField("type", "is not a channel type");
  for (const key of Object.keys(config)) {
    if (!spec[key]) throw invalidField(`config.${key}`, `is not a ${type} setting`);
  }
  const normalized: JsonObject = {};
  for (const [name, field] of Object.entries(spec)) {
    const value = config[name];
    if (value === undefined || value === null || value === "") {
      if (field.required) throw invalidField(`config.${name}`, "is required");
      continue;
    }
    normalized[name] = checkValue(`config.${name}`, field.kind, value, policy);
  }
  return normalized;
}

function checkValue(path: string, kind: FieldKind, value: JsonValue, policy: ConfigPolicy): JsonValue {
  if (kind === "rate") {
    if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > MAX_RATE_PER_SECOND) {
      throw invalidField(path, `must be an integer from 1 to ${MAX_RATE_PER_SECOND}`);
    }
    return value;
  }
  if (kind === "headers") {
    if (typeof value !== "object" || Array.isArray(value)) throw invalidField(path, "must be an object of strings");
    for (const [name, v] of Object.entries(value as JsonObject)) {
      if (
        !/^[A-Za-z0-9-]{1,100}$/.test(name) ||
        typeof v !== "string" ||
        /[\r\n]/.test(v) ||
        v.length > MAX_VALUE_LENGTH
      ) {
        throw invalidField(`${path}.${name}`, "must be a header name with a single-line string value");
      }
    }
    return value;
  }
  if (typeof value !== "string" || value.length > MAX_VALUE_LENGTH) {
    throw invalidField(path, `must be a string of at most ${MAX_VALUE_LENGTH} characters`);
  }
  if (kind === "method") {
    const method = value.toUpperCase();
    if (!METHODS.has(method)) throw invalidField(path, "must be POST, PUT or PATCH");
    return method;
  }
  if (kind === "url") return checkUrl(path, value, policy);
  return value;
}

function checkUrl(path: string, value: string, policy: ConfigPolicy): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalidField(path, "must be an absolute http(s) URL");
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw invalidField(path, "must be an http(s) URL");
  if (url.username || url.password) throw invalidField(path, "must not carry credentials");
  // Names are checked again after DNS resolution at send time.
  if (!policy.allowPrivate && isNonPublicHostname(url.hostname)) {
    throw invalidField(path, "must not point at a private, loopback or link-local address");
  }
  return url.toString();
}

/** The config as reads show it: secret values replaced. */
export function redactConfig(type: string, config: JsonObject): JsonObject {
  const spec: ConfigSpec = adapterOf(type)?.config ?? {};
  const shown: JsonObject = {};
  for (const [name, value] of Object.entries(config)) shown[name] = spec[name]?.secret ? REDACTED : value;
  return shown;
}

/**
 * A PATCH may leave secrets out, or send back the redacted placeholder it
 * read: both keep the stored value, so clients can round-trip a config.
 */
export function mergeSecrets(type: string, stored: JsonObject, incoming: JsonObject): JsonObject {
  const spec: ConfigSpec = adapterOf(type)?.config ?? {};
  const merged: JsonObject = { ...incoming };
  for (const [name, field] of Object.entries(spec)) {
    const value = incoming[name];
    if (field.secret && (value === undefined || value === REDACTED) && stored[name] !== undefined) {
      merged[name] = stored[name] as JsonValue;
    }
  }
  return merged;
}

/** How a row's data key seals and opens one field (services/common/secrets). */
interface FieldSealer {
  seal(field: string, plain: Buffer): Buffer;
  open(field: string, sealed: Buffer): Buffer;
}

/** Secret values and webhook headers (which carry credentials) are sealed at rest. */
function isSealed(field: ConfigSpec[string] | undefined): boolean {
  return field?.secret === true || field?.kind === "headers";
}

/** The config as stored: each sealed field replaced by the base64 of its sealed JSON value. */
export function sealConfig(type: string, config: JsonObject, key: FieldSealer): JsonObject {
  const spec: ConfigSpec = adapterOf(type)?.config ?? {};
  const stored: JsonObject = {};
  for (const [name, value] of Object.entries(config)) {
    stored[name] = isSealed(spec[name])
      ? key.seal(`config.${name}`, Buffer.from(JSON.stringify(value))).toString("base64")
      : value;
  }
  return stored;
}

/** The config as adapters need it, every sealed field opened. */
export function openConfig(type: string, stored: JsonObject, key: FieldSealer): JsonObject {
  const spec: ConfigSpec = adapterOf(type)?.config ?? {};
  const config: JsonObject = {};
  for (const [name, value] of Object.entries(stored)) {
    config[name] =
      isSealed(spec[name]) && typeof value === "string"
        ? (JSON.parse(key.open(`config.${name}`, Buffer.from(value, "base64")).toString("utf8")) as JsonValue)
        : value;
  }
  return config;
}
