import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { isNonPublicHostname } from "../common/address-policy.js";
import { invalidField } from "../common/errors.js";

type Kind = "string" | "url" | "headers" | "method";

interface FieldSpec {
  kind: Kind;
  required?: boolean;
  /** Never shown again after it is set: reads answer REDACTED. */
  secret?: boolean;
}

type Spec = Record<string, FieldSpec>;

export const REDACTED = "[redacted]";

const baseUrl: FieldSpec = { kind: "url" };

/** Config shape of each channel type (design.md §3 Channels). */
const SPECS: Record<string, Spec> = {
  echo: {},
  websocket: {},
  webhook: { url: { kind: "url", required: true }, headers: { kind: "headers" }, method: { kind: "method" } },
  whatsapp_meta: {
    phone_number_id: { kind: "string", required: true },
    access_token: { kind: "string", required: true, secret: true },
    verify_token: { kind: "string", required: true, secret: true },
    app_secret: { kind: "string", required: true, secret: true },
    base_url: baseUrl,
  },
  whatsapp_infobip: {
    base_url: { kind: "url", required: true },
    api_key: { kind: "string", required: true, secret: true },
    sender: { kind: "string", required: true },
  },
  telegram: { bot_token: { kind: "string", required: true, secret: true }, base_url: baseUrl },
  instagram: {
    instagram_account_id: { kind: "string", required: true },
    access_token: { kind: "string", required: true, secret: true },
    base_url: baseUrl,
  },
  messenger: {
    page_id: { kind: "string", required: true },
    page_access_token: { kind: "string", required: true, secret: true },
    app_secret: { kind: "string", secret: true },
    base_url: baseUrl,
  },
};

const METHODS = new Set(["POST", "PUT", "PATCH"]);
const MAX_VALUE_LENGTH = 2048;

export interface ConfigPolicy {
  /** WEBHOOK_ALLOW_PRIVATE: accept loopback and private hosts (tests, on-prem). */
  allowPrivate: boolean;
}

/** Checks a config against its type's spec and returns it normalized; errors name `config.<field>`. */
export function validateChannelConfig(type: string, config: JsonObject, policy: ConfigPolicy): JsonObject {
  const spec = SPECS[type];
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

function checkValue(path: string, kind: Kind, value: JsonValue, policy: ConfigPolicy): JsonValue {
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
  const spec = SPECS[type] ?? {};
  const shown: JsonObject = {};
  for (const [name, value] of Object.entries(config)) shown[name] = spec[name]?.secret ? REDACTED : value;
  return shown;
}

/**
 * A PATCH may leave secrets out, or send back the redacted placeholder it
 * read: both keep the stored value, so clients can round-trip a config.
 */
export function mergeSecrets(type: string, stored: JsonObject, incoming: JsonObject): JsonObject {
  const spec = SPECS[type] ?? {};
  const merged: JsonObject = { ...incoming };
  for (const [name, field] of Object.entries(spec)) {
    const value = incoming[name];
    if (field.secret && (value === undefined || value === REDACTED) && stored[name] !== undefined) {
      merged[name] = stored[name] as JsonValue;
    }
  }
  return merged;
}
