import { type DescField, type DescMessage, getOption, hasOption, isMessage, type Message } from "@bufbuild/protobuf";
import { type FieldRules, rules } from "../../../gen/converger/v1/options_pb.js";
import { invalidArgument, invalidField } from "./errors.js";
import { collectNul } from "./nul.js";

export interface Violation {
  field: string;
  description: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The one UUID check (the `uuid` rule's): 8-4-4-4-12 hex digits, any case. */
export const isUuid = (value: string): boolean => UUID.test(value);

/**
 * Checks a request against the `(converger.v1.rules)` options declared on its
 * fields, recursively, and throws invalid_argument naming every bad field.
 * This is the one place request shapes are validated; handlers only check
 * what depends on stored state. Every string of every request, rules or not,
 * is also refused when it holds U+0000 (see nul.ts).
 */
export function validateMessage(schema: DescMessage, message: Message): void {
  const violations: Violation[] = [];
  collect(schema, message as unknown as Record<string, unknown>, "", violations);
  collectNul(schema, message as unknown as Record<string, unknown>, "", violations);
  if (violations.length > 0) throw invalidArgument(violations);
}

function collect(schema: DescMessage, message: Record<string, unknown>, prefix: string, out: Violation[]): void {
  for (const field of schema.fields) {
    const path = prefix + field.name;
    const value = field.oneof ? undefined : message[field.localName];
    const fieldRules = rulesOf(field);
    if (fieldRules) checkField(field, fieldRules, value, path, out);
    if (field.fieldKind === "message" && value && isOwnMessage(field.message)) {
      collect(field.message, value as Record<string, unknown>, `${path}.`, out);
    }
    if (field.fieldKind === "list" && field.listKind === "message" && Array.isArray(value)) {
      if (!isOwnMessage(field.message)) continue;
      value.forEach((item, i) => {
        collect(field.message, item as Record<string, unknown>, `${path}[${i}].`, out);
      });
    }
    if (field.fieldKind === "enum" && typeof value === "number" && !field.enum.values.some((v) => v.number === value)) {
      out.push({ field: path, description: "unknown value" });
    }
  }
}

const fieldRulesCache = new WeakMap<DescField, FieldRules | null>();

/** A field's rules option, read from its descriptor once. */
export function rulesOf(field: DescField): FieldRules | undefined {
  let cached = fieldRulesCache.get(field);
  if (cached === undefined) {
    cached = hasOption(field, rules) ? getOption(field, rules) : null;
    fieldRulesCache.set(field, cached);
  }
  return cached ?? undefined;
}

function isOwnMessage(schema: DescMessage): boolean {
  return schema.typeName.startsWith("converger.");
}

function checkField(field: DescField, r: FieldRules, value: unknown, path: string, out: Violation[]): void {
  const fail = (description: string) => void out.push({ field: path, description });
  if (r.required && isEmpty(value)) {
    fail("is required");
    return;
  }
  if (Array.isArray(value)) {
    if (r.maxItems && value.length > r.maxItems) fail(`must have at most ${r.maxItems} items`);
    for (const [i, item] of value.entries()) {
      if (typeof item === "string") checkString(r, item, `${path}[${i}]`, out);
    }
    return;
  }
  if (typeof value === "string") checkString(r, value, path, out);
  if ((typeof value === "number" || typeof value === "bigint") && field.fieldKind === "scalar") {
    if (r.min !== undefined && BigInt(value) < r.min) fail(`must be ≥ ${r.min}`);
    if (r.max !== undefined && BigInt(value) > r.max) fail(`must be ≤ ${r.max}`);
  }
}

function checkString(r: FieldRules, value: string, path: string, out: Violation[]): void {
  const fail = (description: string) => void out.push({ field: path, description });
  if (value === "") return;
  const length = [...value].length;
  if (r.minLen && length < r.minLen) fail(`must be at least ${r.minLen} characters`);
  if (r.maxLen && length > r.maxLen) fail(`must be at most ${r.maxLen} characters`);
  if (r.uuid && !UUID.test(value)) fail("must be a UUID");
}

function isEmpty(value: unknown): boolean {
  if (value === undefined || value === null || value === "" || value === 0 || value === 0n) return true;
  if (Array.isArray(value)) return value.length === 0;
  if (isMessage(value)) return false;
  return false;
}

/** Names are trimmed; one made only of spaces is as good as none. */
export function nameOf(raw: string, field = "name"): string {
  const name = raw.trim();
  if (!name) throw invalidField(field, "must not be blank");
  return name;
}
