import { randomUUID } from "node:crypto";
import { create, type JsonObject, toJson } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  ActivitySchema,
  ActivityType,
  type Attachment,
  AttachmentSchema,
  type ConversationsService,
  type CreateActivityRequest,
} from "../../../gen/converger/v1/conversations_pb.js";
import { ReadFrameSchema, TypingFrameSchema } from "../../../gen/converger/v1/frames_pb.js";
import type { File } from "../../../gen/converger/v1/uploads_pb.js";
import { tenantOf } from "../../common/access/access.js";
import { HTTP_STATUS_HEADER, kPrincipal } from "../../common/access/context.js";
import { type Bus, conversationTopic } from "../../common/events/bus.js";
import { conflict, invalidField, notFound } from "../../common/rpc/errors.js";
import { INT64_MAX, parseSeq } from "../../common/rpc/int64.js";
import { pageOf, pageResult } from "../../common/rpc/pagination.js";
import { checkActivity, checkMetadata, requestHash, senderOf } from "../activity-rules.js";
import type { ActivityDraft, createActivityWriter } from "../activity-writer.js";
import type { ActivityStore } from "../store/activities.js";
import type { ConversationStore } from "../store/conversations.js";
import { activityMessage, conversationMessage } from "../store/rows.js";
import type { OutboxRpc } from "./outbox.js";

export interface ConversationsDeps {
  conversations: ConversationStore;
  activities: ActivityStore;
  writer: ReturnType<typeof createActivityWriter>;
  bus: Bus;
  /** The tenant's completed files among `ids` (the uploads service). */
  /** The tenant's completed files among `ids` (the uploads service), only those of `conversationId` when given. */
  describeFiles: (tenantId: string, ids: string[], conversationId?: string) => Promise<File[]>;
  /** Base of download URLs handed out with file attachments. */
  publicUrl: string;
}

const DEFAULT_ACTIVITY_PAGE = 100;

export function conversationsImpl(deps: ConversationsDeps): Omit<ServiceImpl<typeof ConversationsService>, OutboxRpc> {
  /**
   * File attachments become name, size, type and download URL, read once
   * here (files never change), so every read of the activity shows them.
   * A file of another tenant, unknown or not COMPLETED is not found.
   */
  async function expandAttachments(
    tenantId: string,
    attachments: Attachment[],
    conversationId?: string,
  ): Promise<JsonObject[]> {
    const ids = [...new Set(attachments.flatMap((a) => (a.fileId ? [a.fileId.toLowerCase()] : [])))];
    const found = ids.length > 0 ? await deps.describeFiles(tenantId, ids, conversationId) : [];
    const files = new Map(found.map((f) => [f.id, f]));
    return attachments.map((a, i) => {
      if (!a.fileId) return toJson(AttachmentSchema, a, { useProtoFieldName: true }) as JsonObject;
      const file = files.get(a.fileId.toLowerCase());
      if (!file) throw new ConnectError(`attachments[${i}].file_id: file not found`, Code.NotFound);
      return {
        file_id: file.id,
        name: file.filename,
        content_type: file.contentType,
        size: file.size.toString(),
        url: `${deps.publicUrl}/v1/files/${file.id}/content`,
      };
    });
  }

  /** The tenant and conversation an RPC may touch; end users only their own (others look absent). */
  function scope(ctx: HandlerContext, conversationId?: string) {
    const principal = ctx.values.get(kPrincipal);
    if (principal.kind === "end_user" && conversationId && conversationId !== principal.conversationId) {
      throw notFound("conversation");
    }
    return { principal, tenantId: tenantOf(principal) };
  }

  async function activeConversation(tenantId: string, id: string) {
    const row = await deps.conversations.get(tenantId, id);
    if (!row) throw notFound("conversation");
    if (row.status !== "active") throw conflict("conversation is closed");
    return row;
  }

  return {
    async createConversation(req, ctx) {
      const { tenantId } = scope(ctx);
      checkMetadata("metadata", req.metadata);
      const members = [...new Set(req.members.map((m) => m.trim()).filter(Boolean))];
      const outcome = await deps.conversations.create(tenantId, req.channelId, members, req.metadata ?? {});
      if ("error" in outcome) {
        if (outcome.error === "channel_not_found") throw notFound("channel");
        throw conflict("channel is inactive");
      }
      return conversationMessage(outcome.row);
    },

    async listConversations(req, ctx) {
      const { principal, tenantId } = scope(ctx);
      const page = pageOf(req);
      const viewer = principal.kind === "end_user" ? principal : undefined;
      // A client token without a conversation is for none (design.md §2: one conversation).
      if (viewer && !viewer.conversationId) return { conversations: [], nextCursor: "" };
      const { items, nextCursor } = pageResult(await deps.conversations.list(tenantId, page, viewer), page);
      const conversations = items.map((row) => {
        const conversation = conversationMessage(row);
        if (row.last_activity) conversation.lastActivity = activityMessage(row.last_activity);
        if (row.unread_count !== null) conversation.unreadCount = BigInt(row.unread_count);
        return conversation;
      });
      return { conversations, nextCursor };
    },

    async getConversation(req, ctx) {
      const { tenantId } = scope(ctx, req.id);
      const row = await deps.conversations.get(tenantId, req.id);
      if (!row) throw notFound("conversation");
      return conversationMessage(row);
    },

    async closeConversation(req, ctx) {
      const { tenantId } = scope(ctx, req.id);
      const row = await deps.conversations.close(tenantId, req.id);
      if (!row) throw notFound("conversation");
      return conversationMessage(row);
    },

    async createActivity(req, ctx) {
      const { principal, tenantId } = scope(ctx, req.conversationId);
      const from = senderOf(principal, req);
      checkActivity(req);
      if (req.type === ActivityType.TYPING) {
        await activeConversation(tenantId, req.conversationId);
        ctx.responseHeader.set(HTTP_STATUS_HEADER, "202");
        return publishTyping(tenantId, req, from);
      }
      const traceparent = ctx.requestHeader.get("traceparent");
      const draft: ActivityDraft = {
        id: randomUUID(),
        tenantId,
        conversationId: req.conversationId,
        type: req.type === ActivityType.EVENT ? "event" : "message",
        text: req.text,
        // End users attach only files uploaded into their own conversation.
        attachments: await expandAttachments(
          tenantId,
          req.attachments,
          principal.kind === "end_user" ? principal.conversationId : undefined,
        ),
        fromId: from.id,
        fromName: from.name,
        metadata: req.metadata ?? {},
        originChannelId: null,
        ...(traceparent === null ? {} : { traceparent }),
        ...(req.idempotencyKey
          ? { idempotency: { key: req.idempotencyKey, requestHash: requestHash(req, from) } }
          : {}),
      };
      const outcome = await deps.writer.write(draft);
      if (outcome.replayed) {
        ctx.responseHeader.set("idempotent-replayed", "true");
        ctx.responseHeader.set(HTTP_STATUS_HEADER, "200");
      }
      return activityMessage(outcome.row);
    },

    async listActivities(req, ctx) {
      const { tenantId } = scope(ctx, req.conversationId);
      const conversation = await deps.conversations.get(tenantId, req.conversationId);
      if (!conversation) throw notFound("conversation");
      const after = await watermarkSeq(tenantId, req.conversationId, req.watermark);
      const limit = req.limit > 0 ? req.limit : DEFAULT_ACTIVITY_PAGE;
      const rows = await deps.activities.listAfter(tenantId, req.conversationId, after, limit);
      const last = rows[rows.length - 1];
      return { activities: rows.map(activityMessage), watermark: last ? BigInt(last.seq) : after };
    },

    async markRead(req, ctx) {
      const { principal, tenantId } = scope(ctx, req.conversationId);
      const userId = principal.kind === "end_user" ? principal.userId : req.userId;
      if (!userId) throw invalidField("user_id", "is required");
      const readUpTo = await deps.conversations.markRead(tenantId, req.conversationId, userId, req.watermark);
      if (readUpTo === undefined) throw notFound("conversation");
      deps.bus.publish(
        conversationTopic(req.conversationId),
        create(ReadFrameSchema, { conversationId: req.conversationId, userId, readUpTo }),
      );
      return { userId, readUpTo };
    },
  };

  async function watermarkSeq(tenantId: string, conversationId: string, watermark: string): Promise<bigint> {
    if (watermark === "") return 0n;
    const seq = parseSeq(watermark);
    if (seq !== undefined) return seq;
    if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(watermark)) {
      const found = await deps.activities.seqOf(tenantId, conversationId, watermark);
      if (found === undefined) throw notFound("activity");
      return found;
    }
    throw invalidField("watermark", `must be a seq (0 to ${INT64_MAX}) or an activity id`);
  }

  function publishTyping(tenantId: string, req: CreateActivityRequest, from: { id: string; name: string }) {
    const activity = create(ActivitySchema, {
      id: randomUUID(),
      conversationId: req.conversationId,
      tenantId,
      type: ActivityType.TYPING,
      from,
      metadata: req.metadata ?? {},
      createdAt: timestampNow(),
    });
    deps.bus.publish(
      conversationTopic(req.conversationId),
      create(TypingFrameSchema, { conversationId: req.conversationId, from }),
    );
    return activity;
  }
}
