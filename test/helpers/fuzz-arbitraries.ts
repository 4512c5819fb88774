import { type DescField, type DescMessage, ScalarType } from "@bufbuild/protobuf";
import fc from "fast-check";
import { rulesOf } from "../../services/common/rpc/validation.js";

/** Numbers past every integer type the protos use, as text. */
export const HOSTILE_NUMBERS = [
  "9223372036854775808",
  "-9223372036854775809",
  "18446744073709551616",
  "99999999999999999999999999",
  "-1",
  "0",
  "1.5",
  "1e400",
  "-0",
  "NaN",
  "Infinity",
  "0x10",
  " 1",
  "",
];

/** encodeURIComponent that also takes lone surrogates (sent as the bytes of an encoded surrogate). */
export function encodeHostile(value: string): string {
  return value
    .split(/([\ud800-\udfff])/)
    .map((part) => (/^[\ud800-\udfff]$/.test(part) ? "%ED%A0%80" : encodeURIComponent(part)))
    .join("");
}

/** Strings that have broken parsers before: NUL, lone surrogates, huge, control characters. */
export const shortHostileString: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom("\u0000", "a\u0000b", "\ud800", "\uffff", "\u202e", "\r\n", "../../etc/passwd", "%00", "null"),
  fc.constantFrom(...HOSTILE_NUMBERS),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 40 }),
);

/** The same, sometimes very long (past column sizes, header limits and frame limits). */
export const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: shortHostileString },
  { weight: 1, arbitrary: fc.integer({ min: 1000, max: 200_000 }).map((n) => "x".repeat(n)) },
);

const hugeNumber = fc.constantFrom(2 ** 53 + 1, 1e308, -1e308, 2 ** 63, -1, 0.5, 4294967296, 2147483648);

/** Any JSON value, with hostile leaves. */
export const anyJson: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    hugeNumber,
    fc.double(),
    hostileString,
    fc.array(tie("value"), { maxLength: 4 }),
    fc.dictionary(fc.oneof(fc.string({ maxLength: 8 }), hostileString), tie("value"), { maxKeys: 4 }),
  ),
})).value;

/** A JSON text nested `depth` deep (arrays or objects). */
function deepNesting(depth: number, kind: "array" | "object", key = "metadata"): string {
  const open = kind === "array" ? "[" : `{"${key}":`;
  const close = kind === "array" ? "]" : "}";
  return `${open.repeat(depth)}1${close.repeat(depth)}`;
}

/** A value of the right JSON type for a field, hostile within that type. */
function rightValue(field: DescField, depth: number): fc.Arbitrary<unknown> {
  switch (field.fieldKind) {
    case "scalar":
      return scalarValue(field.scalar);
    case "enum":
      return fc.oneof(
        fc.constantFrom(...field.enum.values.map((v) => v.name.split("_").slice(-1)[0]?.toLowerCase() ?? "")),
        fc.constantFrom(...field.enum.values.map((v) => v.name)),
        fc.integer({ min: -2, max: 99 }),
        hostileString,
      );
    case "message":
      return messageValue(field.message, depth + 1);
    case "list":
      return fc.array(
        field.listKind === "scalar"
          ? scalarValue(field.scalar)
          : field.listKind === "message"
            ? messageValue(field.message, depth + 1)
            : hostileString,
        { maxLength: 3 },
      );
    case "map":
      return fc.dictionary(hostileString, anyJson, { maxKeys: 3 });
  }
}

function scalarValue(type: ScalarType): fc.Arbitrary<unknown> {
  switch (type) {
    case ScalarType.STRING:
      return hostileString;
    case ScalarType.BOOL:
      return fc.oneof(fc.boolean(), fc.constantFrom("true", "yes", 1));
    case ScalarType.BYTES:
      return fc.oneof(fc.base64String({ maxLength: 40 }), hostileString);
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return fc.oneof(fc.double(), hugeNumber, fc.constantFrom("NaN", "Infinity", "1e400"));
    default:
      return fc.oneof(hugeNumber, fc.integer(), fc.constantFrom(...HOSTILE_NUMBERS));
  }
}

const WELL_KNOWN: Record<string, fc.Arbitrary<unknown>> = {
  "google.protobuf.Timestamp": fc.constantFrom(
    "2026-01-01T00:00:00Z",
    "9999-99-99T99:99:99Z",
    "0001-01-01T00:00:00Z",
    "x",
  ),
  "google.protobuf.Duration": fc.constantFrom("1s", "-315576000001s", "1e400s", "x"),
};

/** A JSON object for a message: its fields with right or wrong types, plus unknown keys. */
function messageValue(message: DescMessage, depth = 0): fc.Arbitrary<unknown> {
  const known = WELL_KNOWN[message.typeName];
  if (known) return fc.oneof(known, anyJson);
  if (message.typeName.startsWith("google.protobuf.") || depth > 3) return anyJson;
  const record: Record<string, fc.Arbitrary<unknown>> = {};
  for (const field of message.fields) {
    record[field.name] = fc.oneof(
      { weight: 4, arbitrary: rightValue(field, depth) },
      { weight: 1, arbitrary: anyJson },
    );
  }
  return fc.oneof({ weight: 5, arbitrary: fc.record(record, { requiredKeys: [] }) }, { weight: 1, arbitrary: anyJson });
}

/** A request body for a schema: JSON derived from it, deep nesting, or arbitrary bytes. */
export function bodyFor(message: DescMessage): fc.Arbitrary<Uint8Array | string> {
  return fc.oneof(
    { weight: 8, arbitrary: messageValue(message).map((v) => JSON.stringify(v) ?? "null") },
    {
      weight: 1,
      arbitrary: fc
        .constantFrom(100, 5000, 100_000)
        .chain((d) => fc.constantFrom(deepNesting(d, "array"), deepNesting(d, "object"))),
    },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }) },
    { weight: 1, arbitrary: fc.constantFrom("", "{", "[]", "null", '"x"', "{}\u0000", "\ufeff{}", '{"a":1,"a":2}') },
  );
}

/** Query strings: known field names and junk, with overflowing, negative, float, NUL and repeated values. */
export function queryFor(names: string[]): fc.Arbitrary<string> {
  const key = fc.oneof(
    fc.constantFrom(...(names.length > 0 ? names : ["x"])),
    fc.constantFrom("x", "a[]", "%00", "limit[0]"),
  );
  const value = fc.oneof(
    fc.constantFrom(...HOSTILE_NUMBERS).map(encodeHostile),
    fc.constantFrom("%00", "%zz", "%", "a%00b", "%C0%AF", "%ED%A0%80", "x".repeat(10_000)),
    hostileString.map(encodeHostile),
  );
  return fc
    .array(fc.tuple(key, value), { maxLength: 5 })
    .map((pairs) => (pairs.length === 0 ? "" : `?${pairs.map(([k, v]) => `${k}=${v}`).join("&")}`));
}

/** A path parameter: a real id, a random UUID or hostile junk, as it goes on the wire. */
export function paramValue(realIds: string[]): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...realIds) },
    { weight: 2, arbitrary: fc.uuid() },
    {
      weight: 3,
      arbitrary: fc.constantFrom(
        "%00",
        "%zz",
        "..",
        ".",
        "%2e%2e",
        "%2F",
        "%E0%A4%A",
        "%C0%AF",
        "-1",
        "0",
        "1",
        "9223372036854775808",
        "1.5",
        "x".repeat(8000),
        "00000000-0000-0000-0000-000000000000",
      ),
    },
    { weight: 2, arbitrary: hostileString.map(encodeHostile) },
  );
}

/** Real ids by the name of the field or path parameter that carries them. */
export type RealIds = Record<string, string>;

/** The real id a field or `{id}` parameter names, judged by its name or the literal before it. */
export function realIdFor(name: string, ids: RealIds, before = ""): string | undefined {
  if (ids[name]) return ids[name];
  if (name !== "id") return undefined;
  const noun = before.replace(/s$/, "").replace(/-/g, "_");
  return ids[`${noun}_id`] ?? (noun === "tu" ? ids.upload_id : undefined);
}

/** A plausible value for a field: what a well-behaved client would send. */
function benignValue(field: DescField, ids: RealIds, depth: number): fc.Arbitrary<unknown> {
  const realId = realIdFor(field.name, ids);
  if (realId) return fc.constant(realId);
  switch (field.fieldKind) {
    case "scalar":
      if (field.scalar === ScalarType.STRING && rulesOf(field)?.uuid) return fc.uuid();
      if (field.scalar === ScalarType.STRING) return fc.constantFrom("fuzz", "hello", "u1", "https://example.com/x");
      if (field.scalar === ScalarType.BOOL) return fc.boolean();
      if (field.scalar === ScalarType.BYTES) return fc.constant("AAAA");
      return fc.constantFrom(1, 10, "1");
    case "enum": {
      const names = field.enum.values
        .filter((v) => v.number !== 0)
        .map((v) => v.name.split("_").slice(-1)[0]?.toLowerCase() ?? "");
      return names.length > 0 ? fc.constantFrom(...names) : fc.constant(0);
    }
    case "message":
      return nearValidMessage(field.message, ids, depth + 1);
    case "list":
      return field.listKind === "message"
        ? fc.oneof(
            { weight: 3, arbitrary: fc.constant([]) },
            { weight: 1, arbitrary: fc.array(nearValidMessage(field.message, ids, depth + 1), { maxLength: 2 }) },
          )
        : fc.constant([]);
    case "map":
      return fc.constant({});
  }
}

/** The right JSON type with the value most likely to break a handler: NUL in text, numbers past int64. */
function targetedValue(field: DescField): fc.Arbitrary<unknown> {
  const scalar = field.fieldKind === "scalar" || field.fieldKind === "list" ? field.scalar : undefined;
  const one: fc.Arbitrary<unknown> | undefined =
    scalar === ScalarType.STRING
      ? fc.constantFrom("a\u0000b", "\u0000", "\ud800", "x".repeat(70_000), "9223372036854775808", "-1")
      : scalar !== undefined && scalar !== ScalarType.BOOL && scalar !== ScalarType.BYTES
        ? fc.constantFrom("9223372036854775808", "-9223372036854775809", 1e20, -1, "1.5", 2147483648)
        : undefined;
  if (!one) return benignValue(field, {}, 0);
  return field.fieldKind === "list" ? one.map((v) => [v]) : one;
}

/** A query string a client might send, with one known parameter at a value past its type (or NUL). */
export function targetedQuery(names: string[]): fc.Arbitrary<string> {
  if (names.length === 0) return fc.constant("");
  return fc
    .tuple(
      fc.constantFrom(...names),
      fc.constantFrom(
        "9223372036854775808",
        "9223372036854775808",
        "-1",
        "18446744073709551616",
        "1.5",
        "a%00b",
        "%00",
        "%ED%A0%80",
      ),
    )
    .map(([name, value]) => `?${name}=${value}`);
}

/** A request a real client might send, with each field hostile now and then (NUL, overflow, wrong type). */
export function nearValidMessage(message: DescMessage, ids: RealIds, depth = 0): fc.Arbitrary<unknown> {
  if (message.typeName === "google.protobuf.Struct")
    return fc.oneof(fc.constant({}), fc.dictionary(shortHostileString, anyJson, { maxKeys: 2 }));
  const known = WELL_KNOWN[message.typeName];
  if (known) return known;
  if (message.typeName.startsWith("google.protobuf.") || depth > 3) return fc.constant({});
  const record: Record<string, fc.Arbitrary<unknown>> = {};
  for (const field of message.fields) {
    record[field.name] = fc.oneof(
      { weight: 6, arbitrary: benignValue(field, ids, depth) },
      { weight: 2, arbitrary: targetedValue(field) },
      { weight: 1, arbitrary: rightValue(field, depth) },
    );
  }
  // Every field present: a missing required one would stop the request at validation.
  return fc.record(record);
}
