import type { JsonObject } from "@bufbuild/protobuf";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Channel, ChannelSchema, ChannelStatus, ChannelType } from "../../../gen/converger/v1/channels_pb.js";
import {
  type Activity,
  ActivitySchema,
  ActivityType,
  AttachmentSchema,
  type Conversation,
  ConversationSchema,
  ConversationStatus,
} from "../../../gen/converger/v1/conversations_pb.js";
import { type Event, EventSchema } from "../../../gen/converger/v1/events_pb.js";
import { type Tenant, TenantSchema, TenantStatus } from "../../../gen/converger/v1/tenants_pb.js";

/** Row shapes as pg returns them, and their conversion to API messages. */

export interface TenantRow {
  id: string;
  name: string;
  status: "active" | "inactive";
  rate_limit_per_minute: number | null;
  created_at: Date;
  updated_at: Date;
  sort_key: string;
}

export interface ChannelRow {
  id: string;
  tenant_id: string;
  name: string;
  type: string;
  status: "active" | "inactive";
  config: JsonObject;
  secret: string;
  created_at: Date;
  updated_at: Date;
  sort_key: string;
}

export interface ConversationRow {
  id: string;
  tenant_id: string;
  channel_id: string;
  external_id: string | null;
  status: "active" | "closed";
  members: string[];
  metadata: JsonObject;
  last_seq: string;
  created_at: Date;
  updated_at: Date;
  sort_key: string;
}

export interface ActivityRow {
  id: string;
  conversation_id: string;
  tenant_id: string;
  seq: string;
  type: "message" | "event";
  text: string;
  attachments: JsonObject[];
  from_id: string;
  from_name: string;
  metadata: JsonObject;
  origin_channel_id: string | null;
  created_at: Date;
}

export interface EventRow {
  id: string;
  tenant_id: string;
  message: string;
  created_at: Date;
  sort_key: string;
}

const TENANT_STATUS = { active: TenantStatus.ACTIVE, inactive: TenantStatus.INACTIVE };
const CHANNEL_STATUS = { active: ChannelStatus.ACTIVE, inactive: ChannelStatus.INACTIVE };
const CONVERSATION_STATUS = { active: ConversationStatus.ACTIVE, closed: ConversationStatus.CLOSED };
const ACTIVITY_TYPE = { message: ActivityType.MESSAGE, event: ActivityType.EVENT };

export function channelTypeName(type: ChannelType): string {
  return ChannelType[type].toLowerCase();
}

export function channelTypeOf(name: string): ChannelType {
  return ChannelType[name.toUpperCase() as keyof typeof ChannelType] ?? ChannelType.UNSPECIFIED;
}

function struct(json: JsonObject | null | undefined): JsonObject {
  return json ?? {};
}

export function tenantMessage(row: TenantRow): Tenant {
  return create(TenantSchema, {
    id: row.id,
    name: row.name,
    status: TENANT_STATUS[row.status],
    rateLimitPerMinute: row.rate_limit_per_minute ?? 0,
    createdAt: timestampFromDate(row.created_at),
    updatedAt: timestampFromDate(row.updated_at),
  });
}

/** `config` must already be redacted by the caller. */
export function channelMessage(row: ChannelRow, config: JsonObject, secret?: string): Channel {
  return create(ChannelSchema, {
    id: row.id,
    tenantId: row.tenant_id,
    name: row.name,
    type: channelTypeOf(row.type),
    status: CHANNEL_STATUS[row.status],
    config: struct(config),
    secret,
    createdAt: timestampFromDate(row.created_at),
    updatedAt: timestampFromDate(row.updated_at),
  });
}

export function conversationMessage(row: ConversationRow): Conversation {
  return create(ConversationSchema, {
    id: row.id,
    tenantId: row.tenant_id,
    channelId: row.channel_id,
    externalId: row.external_id ?? undefined,
    status: CONVERSATION_STATUS[row.status],
    members: row.members,
    metadata: struct(row.metadata),
    lastSeq: BigInt(row.last_seq),
    createdAt: timestampFromDate(row.created_at),
    updatedAt: timestampFromDate(row.updated_at),
  });
}

export function activityMessage(row: ActivityRow): Activity {
  return create(ActivitySchema, {
    id: row.id,
    conversationId: row.conversation_id,
    tenantId: row.tenant_id,
    seq: BigInt(row.seq),
    type: ACTIVITY_TYPE[row.type],
    text: row.text,
    attachments: row.attachments.map((a) =>
      create(AttachmentSchema, {
        fileId: String(a.file_id ?? ""),
        url: String(a.url ?? ""),
        contentType: String(a.content_type ?? ""),
        name: String(a.name ?? ""),
        size: BigInt(Number(a.size ?? 0)),
      }),
    ),
    from: { id: row.from_id, name: row.from_name },
    metadata: struct(row.metadata),
    originChannelId: row.origin_channel_id ?? undefined,
    createdAt: timestampFromDate(row.created_at),
  });
}

export function eventMessage(row: EventRow): Event {
  return create(EventSchema, {
    id: row.id,
    tenantId: row.tenant_id,
    message: row.message,
    timestamp: timestampFromDate(row.created_at),
  });
}
