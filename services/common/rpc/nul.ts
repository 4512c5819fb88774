import type { DescField, DescMessage } from "@bufbuild/protobuf";
import type { Violation } from "./validation.js";

/**
 * U+0000 is refused in every string a client sends: PostgreSQL rejects it in
 * `text` and `jsonb` alike (a 500 after the work was done), and it truncates
 * strings in C-based consumers downstream.
 */
const NUL = "\u0000";
const MUST_NOT = "must not contain U+0000";
const KEY_MUST_NOT = "key must not contain U+0000";

type Fields = Record<string, unknown>;

/** Adds a violation for every string of a message (any depth, map keys, Struct contents) holding U+0000. */
export function collectNul(schema: DescMessage, message: Fields, prefix: string, out: Violation[]): void {
  for (const field of schema.fields) {
    const value = fieldValue(field, message);
    if (value === undefined || value === null) continue;
    const path = prefix + field.name;
    if (field.fieldKind === "scalar" || field.fieldKind === "message") {
      checkSingle(field, value, path, out);
    } else if (field.fieldKind === "list" && Array.isArray(value)) {
      value.forEach((item, i) => void checkSingle(field, item, `${path}[${i}]`, out));
    } else if (field.fieldKind === "map" && typeof value === "object") {
      for (const [key, item] of Object.entries(value as Fields)) {
        if (key.includes(NUL)) out.push({ field: `${path}.${shown(key)}`, description: KEY_MUST_NOT });
        checkSingle(field, item, `${path}.${shown(key)}`, out);
      }
    }
  }
}

/** The path of the first JSON string or key holding U+0000 (`""` for the value itself), or undefined. */
export function firstNulPath(value: unknown, path: string): string | undefined {
  const out: Violation[] = [];
  collectJson(value, path, out);
  return out[0]?.field;
}

function fieldValue(field: DescField, message: Fields): unknown {
  if (!field.oneof) return message[field.localName];
  const chosen = message[field.oneof.localName] as { case?: string; value?: unknown } | undefined;
  return chosen?.case === field.localName ? chosen.value : undefined;
}

function checkSingle(field: DescField, value: unknown, path: string, out: Violation[]): void {
  if (typeof value === "string") {
    if (value.includes(NUL)) out.push({ field: path, description: MUST_NOT });
    return;
  }
  const schema = "message" in field ? field.message : undefined;
  if (!schema || typeof value !== "object" || value === null) return;
  // protobuf-es v2 holds Struct as a JSON object and Value as any JSON value.
  if (schema.typeName === "google.protobuf.Struct" || schema.typeName === "google.protobuf.Value") {
    collectJson(value, path, out);
  } else if (schema.typeName === "google.protobuf.ListValue") {
    collectJson((value as { values?: unknown }).values ?? value, path, out);
  } else {
    collectNul(schema, value as Fields, `${path}.`, out);
  }
}

function collectJson(value: unknown, path: string, out: Violation[]): void {
  if (typeof value === "string") {
    if (value.includes(NUL)) out.push({ field: path, description: MUST_NOT });
  } else if (Array.isArray(value)) {
    value.forEach((item, i) => void collectJson(item, `${path}[${i}]`, out));
  } else if (typeof value === "object" && value !== null) {
    for (const [key, item] of Object.entries(value)) {
      const at = path ? `${path}.${shown(key)}` : shown(key);
      if (key.includes(NUL)) out.push({ field: at, description: KEY_MUST_NOT });
      collectJson(item, at, out);
    }
  }
}

/** A key as it may appear in a field path: NUL spelled as its JSON escape. */
function shown(key: string): string {
  return key.replaceAll(NUL, "\\u0000");
}
