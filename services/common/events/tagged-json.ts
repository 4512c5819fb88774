import { type DescMessage, getOption, type JsonObject, type JsonValue, type MessageShape } from "@bufbuild/protobuf";
import { json_type } from "../../../gen/converger/v1/json_type_pb.js";
import { invalidField } from "../rpc/errors.js";
import { fromApiJson, toApiJson } from "../rpc/json.js";

/** The public JSON of a message that names its kind in `type` (a frame, an envelope). */
export type TaggedJson = { type: string } & JsonObject;

/** A message's `(converger.v1.json_type)`: the value of `type` in its JSON. */
function jsonTypeOf(schema: DescMessage): string {
  const tag = getOption(schema, json_type);
  if (!tag) throw new Error(`${schema.typeName} has no (converger.v1.json_type)`);
  return tag;
}

/**
 * Encodes and decodes the messages that share one channel (the WebSocket,
 * the bus, an event-log topic), told apart by their `type` key. The JSON is
 * the public JSON of design.md §3 (toApiJson), so it matches what REST shows
 * for the same message.
 */
export function createTaggedCodec<const Schemas extends readonly DescMessage[]>(schemas: Schemas) {
  type Shape = MessageShape<Schemas[number]>;
  const byType = new Map<string, DescMessage>();
  const byName = new Map<string, { schema: DescMessage; tag: string }>();
  for (const schema of schemas) {
    const tag = jsonTypeOf(schema);
    if (byType.has(tag)) throw new Error(`two messages of one channel are both "${tag}"`);
    byType.set(tag, schema);
    byName.set(schema.typeName, { schema, tag });
  }
  return {
    /** `type` always comes out as the message's json_type, whatever the message's own field says. */
    encode(message: Shape): TaggedJson {
      const entry = byName.get(message.$typeName);
      if (!entry) throw new Error(`${message.$typeName} does not travel on this channel`);
      const json = toApiJson(entry.schema, message) as TaggedJson;
      json.type = entry.tag;
      return json;
    },
    /**
     * Decodes JSON written by encode (or by a producer of an earlier or later
     * version): keys at the top that the schema does not know are ignored, so
     * a field added later does not turn older readers' records into failures.
     * Throws an invalid_argument ConnectError naming the field. The input is
     * left untouched: the same frame object may be on its way to other readers.
     */
    decode(json: unknown): Shape {
      if (!isObject(json)) throw invalidField("frame", "must be a JSON object");
      const schema = typeof json.type === "string" ? byType.get(json.type) : undefined;
      if (!schema) throw invalidField("type", "unknown frame type");
      const known: JsonObject = {};
      for (const field of schema.fields) {
        const key = field.name in json ? field.name : field.jsonName;
        const value = json[key];
        if (value !== undefined) known[key] = structuredClone(value);
      }
      return fromApiJson(schema, known) as Shape;
    },
    /** Whether JSON of this `type` travels here. */
    knows(type: string): boolean {
      return byType.has(type);
    },
  };
}

function isObject(value: unknown): value is { [key: string]: JsonValue } {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
