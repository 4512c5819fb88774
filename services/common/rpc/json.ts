import {
  type DescEnum,
  type DescMessage,
  fromJson,
  type JsonValue,
  type MessageShape,
  ScalarType,
  toJson,
} from "@bufbuild/protobuf";
import { invalidField } from "./errors.js";

// The seeds spell upload statuses in capitals; every other enum is a lowercase word.
const UPPERCASE_ENUMS = new Set(["converger.v1.UploadState"]);

type JsonObject = { [key: string]: JsonValue };

const INTEGER_TYPES = new Set([
  ScalarType.INT32,
  ScalarType.INT64,
  ScalarType.UINT32,
  ScalarType.UINT64,
  ScalarType.SINT32,
  ScalarType.SINT64,
  ScalarType.FIXED32,
  ScalarType.FIXED64,
  ScalarType.SFIXED32,
  ScalarType.SFIXED64,
]);

/**
 * Renders a message as the public JSON of design.md §3: proto field names,
 * int64 as decimal strings, RFC 3339 times, and enum values as short words
 * (`ACTIVITY_TYPE_MESSAGE` → `message`).
 */
export function toApiJson<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): JsonValue {
  const json = toJson(schema, message, { useProtoFieldName: true, alwaysEmitImplicit: true });
  rewriteEnums(schema, json, shortName, "");
  return json;
}

/** Parses public JSON into a message; errors answer invalid_argument naming the field. */
export function fromApiJson<Desc extends DescMessage>(schema: Desc, json: JsonValue): MessageShape<Desc> {
  rewriteEnums(schema, json, fullName, "");
  try {
    return fromJson(schema, json);
  } catch (error) {
    throw jsonDecodeError(error as Error);
  }
}

type EnumMap = (e: DescEnum, value: string, path: string) => string;

function rewriteEnums(schema: DescMessage, json: JsonValue, map: EnumMap, prefix: string): void {
  if (!isObject(json) || !schema.typeName.startsWith("converger.")) return;
  for (const field of schema.fields) {
    const key = field.name in json ? field.name : field.jsonName;
    const value = json[key];
    const path = prefix + field.name;
    if (value === undefined || value === null) continue;
    if (field.fieldKind === "scalar" && INTEGER_TYPES.has(field.scalar) && typeof value === "string") {
      // protobuf-es reads strings with BigInt(), which also takes `0x10`, `0b1` and spaces.
      if (!/^-?\d+$/.test(value)) throw invalidField(path, "must be a decimal integer");
    } else if (field.fieldKind === "enum" && typeof value === "string") {
      json[key] = map(field.enum, value, path);
    } else if (field.fieldKind === "list" && field.listKind === "enum" && Array.isArray(value)) {
      json[key] = value.map((v, i) => (typeof v === "string" ? map(field.enum, v, `${path}[${i}]`) : v));
    } else if (field.fieldKind === "message") {
      rewriteEnums(field.message, value, map, `${path}.`);
    } else if (field.fieldKind === "list" && field.listKind === "message" && Array.isArray(value)) {
      for (const [i, item] of value.entries()) rewriteEnums(field.message, item, map, `${path}[${i}].`);
    }
  }
}

function enumPrefix(e: DescEnum): string {
  return `${e.name.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase()}_`;
}

function shortName(e: DescEnum, full: string): string {
  const prefix = enumPrefix(e);
  const word = full.startsWith(prefix) ? full.slice(prefix.length) : full;
  return UPPERCASE_ENUMS.has(e.typeName) ? word : word.toLowerCase();
}

function fullName(e: DescEnum, word: string, path: string): string {
  const known = e.values.filter((v) => v.number !== 0);
  const full = known.find((v) => v.name === word || v.name === enumPrefix(e) + word.toUpperCase());
  if (!full) {
    const words = known.map((v) => shortName(e, v.name)).join(", ");
    throw invalidField(path, `unknown value ${JSON.stringify(word)} (expected one of: ${words})`);
  }
  return full.name;
}

function isObject(value: JsonValue): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** protobuf-es names the failing field in its message; keep that, drop the type prefix. */
function jsonDecodeError(error: Error) {
  const field = /cannot decode field [\w.]*?\.(\w+) from JSON: (.*)$/s.exec(error.message);
  if (field) {
    const integer = /expected (?:bigint|number) \((\w+)\)/.exec(field[2] as string);
    const description = integer ? `is out of the ${integer[1]} range` : `invalid value ${field[2]}`;
    return invalidField(field[1] as string, description);
  }
  const unknown = /key "([^"]+)" is unknown/.exec(error.message);
  if (unknown) return invalidField(unknown[1] as string, "unknown field");
  return invalidField("body", error.message.replace(/^cannot decode message [\w.]+ from JSON: /, ""));
}
