import {
  type DescEnum,
  type DescMessage,
  fromJson,
  getOption,
  type JsonValue,
  type MessageShape,
  toJson,
} from "@bufbuild/protobuf";
import {
  AckFrameSchema,
  ActivityFrameSchema,
  AuthFrameSchema,
  AuthOkFrameSchema,
  ConnectionEstablishedFrameSchema,
  DeliveryFrameSchema,
  ErrorFrameSchema,
  EventCreatedFrameSchema,
  PingFrameSchema,
  PongFrameSchema,
  PublishActivityFrameSchema,
  ReadFrameSchema,
  SubscribeFrameSchema,
  TypingFrameSchema,
  UnsubscribeFrameSchema,
} from "../../../gen/converger/v1/frames_pb.js";
import { json_type } from "../../../gen/converger/v1/json_type_pb.js";

const SERVER_FRAMES = [
  ConnectionEstablishedFrameSchema,
  ActivityFrameSchema,
  TypingFrameSchema,
  ReadFrameSchema,
  DeliveryFrameSchema,
  EventCreatedFrameSchema,
  AckFrameSchema,
  ErrorFrameSchema,
  PongFrameSchema,
  AuthOkFrameSchema,
] as const;

const CLIENT_FRAMES = [
  PublishActivityFrameSchema,
  SubscribeFrameSchema,
  UnsubscribeFrameSchema,
  AuthFrameSchema,
  PingFrameSchema,
] as const;

/** What the edge sends (frames.proto, server → client). */
export type ServerFrame = MessageShape<(typeof SERVER_FRAMES)[number]>;
/** What the stream sends (frames.proto, client → server). */
export type ClientFrame = MessageShape<(typeof CLIENT_FRAMES)[number]>;

const serverByType = new Map<string, DescMessage>(SERVER_FRAMES.map((schema) => [tagOf(schema), schema]));
const clientByName = new Map<string, { schema: DescMessage; tag: string }>(
  CLIENT_FRAMES.map((schema) => [schema.typeName, { schema, tag: tagOf(schema) }]),
);

function tagOf(schema: DescMessage): string {
  const tag = getOption(schema, json_type);
  if (!tag) throw new Error(`${schema.typeName} has no json_type`);
  return tag;
}

/**
 * Reads one frame of the public JSON (design.md §3: enum values as short
 * words). A frame of a kind this client does not know yet is undefined rather
 * than an error, so a newer server does not break older clients.
 */
export function decodeServerFrame(text: string): ServerFrame | undefined {
  const json: JsonValue = JSON.parse(text);
  if (!isObject(json) || typeof json.type !== "string") throw new Error("frame without a type");
  const schema = serverByType.get(json.type);
  if (!schema) return undefined;
  widenEnums(schema, json);
  return fromJson(schema, json, { ignoreUnknownFields: true }) as ServerFrame;
}

/** The JSON text of a client frame; the edge reads full enum names as well as short words. */
export function encodeClientFrame(frame: ClientFrame): string {
  const entry = clientByName.get(frame.$typeName);
  if (!entry) throw new Error(`${frame.$typeName} is not a client frame`);
  const json = toJson(entry.schema, frame, { useProtoFieldName: true });
  if (!isObject(json)) throw new Error("a frame encodes to an object");
  json.type = entry.tag;
  return JSON.stringify(json);
}

/** Short enum words (`message`) back to the names protobuf-es reads (`ACTIVITY_TYPE_MESSAGE`), in place. */
function widenEnums(schema: DescMessage, json: JsonValue): void {
  if (!isObject(json) || !schema.typeName.startsWith("converger.")) return;
  for (const field of schema.fields) {
    const key = field.name in json ? field.name : field.jsonName;
    const value = json[key];
    if (value === undefined || value === null) continue;
    if (field.fieldKind === "enum" && typeof value === "string") json[key] = fullName(field.enum, value);
    else if (field.fieldKind === "list" && field.listKind === "enum" && Array.isArray(value))
      json[key] = value.map((v) => (typeof v === "string" ? fullName(field.enum, v) : v));
    else if (field.fieldKind === "message") widenEnums(field.message, value);
    else if (field.fieldKind === "list" && field.listKind === "message" && Array.isArray(value))
      for (const item of value) widenEnums(field.message, item);
  }
}

function fullName(e: DescEnum, word: string): string {
  const prefix = `${e.name.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase()}_`;
  const full = `${prefix}${word.toUpperCase()}`;
  // A value this client's schema lacks stays as sent: fromJson then reads it as unknown.
  return e.values.some((v) => v.name === full) ? full : word;
}

function isObject(value: JsonValue): value is { [key: string]: JsonValue } {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
