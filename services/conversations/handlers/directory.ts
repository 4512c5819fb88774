import { createHash, randomUUID } from "node:crypto";
import { type JsonObject, toJson } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { ActivityType, AttachmentSchema, type DirectoryService } from "../../../gen/converger/v1/conversations_pb.js";
import { conflict, invalidField, notFound } from "../../common/rpc/errors.js";
import { checkMetadata } from "../activity-rules.js";
import type { ActivityWriter } from "../activity-writer.js";
import type { ConversationStore } from "../store/conversations.js";
import type { DirectoryStore } from "../store/directory.js";
import { activityMessage } from "../store/rows.js";

export interface DirectoryDeps {
  directory: DirectoryStore;
  conversations: ConversationStore;
  writer: ActivityWriter;
}

export function directoryImpl(deps: DirectoryDeps): ServiceImpl<typeof DirectoryService> {
  return {
    async resolveApiKey(req) {
      const tenant = await deps.directory.tenantByApiKey(req.apiKey);
      return tenant ? { found: true, tenantId: tenant.id, tenantActive: tenant.active } : { found: false };
    },
    async getTenantStatus(req) {
      const tenant = await deps.directory.tenantStatus(req.tenantId);
      return {
        exists: tenant !== undefined,
        active: tenant?.active ?? false,
        rateLimitPerMinute: tenant?.rate_limit_per_minute ?? 0,
      };
    },
    async resolveChannelSecret(req) {
      const channel = await deps.directory.channelBySecret(req.secret);
      if (!channel) return { found: false };
      return {
        found: true,
        channelId: channel.id,
        tenantId: channel.tenant_id,
        channelActive: channel.channel_active,
        tenantActive: channel.tenant_active,
      };
    },
    async getChannelRecord(req) {
      const channel = await deps.directory.channelRecord(req.channelId);
      if (!channel) return { found: false };
      return {
        found: true,
        id: channel.id,
        tenantId: channel.tenant_id,
        type: channel.type,
        channelActive: channel.channel_active,
        tenantActive: channel.tenant_active,
        config: channel.config,
        secret: channel.secret,
      };
    },
    async getConversationRoute(req) {
      const route = await deps.directory.conversationRoute(req.conversationId);
      if (!route) return { found: false };
      return {
        found: true,
        tenantId: route.tenant_id,
        channelId: route.channel_id,
        externalId: route.external_id ?? "",
      };
    },
    async getActivityOwner(req) {
      const owner = await deps.directory.activityOwner(req.activityId);
      if (!owner) return { found: false };
      return { found: true, tenantId: owner.tenant_id, conversationId: owner.conversation_id };
    },
    async postChannelActivity(req, ctx) {
      const channel = await deps.directory.channelRecord(req.channelId);
      if (!channel) throw notFound("channel");
      if (!channel.tenant_active) throw new ConnectError("tenant is inactive", Code.PermissionDenied);
      if (!channel.channel_active) throw conflict("channel is inactive");
      checkMetadata("metadata", req.metadata);
      const from = { id: req.from?.id || "bot", name: req.from?.name ?? "" };
      let conversationId = req.conversationId;
      if (conversationId) {
        const route = await deps.directory.conversationRoute(conversationId);
        if (route?.tenant_id !== channel.tenant_id) throw notFound("conversation");
      } else {
        if (!req.externalId) throw invalidField("external_id", "is required without conversation_id");
        conversationId = await deps.directory.conversationForExternal(
          channel.tenant_id,
          channel.id,
          req.externalId,
          from.id,
        );
      }
      // The provider's message id is the key: a repeat, whatever its body, is the same message.
      const key = `channel:${channel.id}:${req.messageId}`;
      const traceparent = ctx.requestHeader.get("traceparent");
      const outcome = await deps.writer.write({
        id: randomUUID(),
        tenantId: channel.tenant_id,
        conversationId,
        type: req.type === ActivityType.EVENT ? "event" : "message",
        text: req.text,
        attachments: req.attachments.map((a) => toJson(AttachmentSchema, a, { useProtoFieldName: true }) as JsonObject),
        fromId: from.id,
        fromName: from.name,
        metadata: req.metadata ?? {},
        originChannelId: channel.id,
        ...(traceparent === null ? {} : { traceparent }),
        idempotency: { key, requestHash: createHash("sha256").update(key).digest() },
      });
      return { activity: activityMessage(outcome.row), replayed: outcome.replayed };
    },
    async joinConversation(req) {
      if (!req.conversationId) {
        const created = await deps.conversations.create(req.tenantId, req.channelId, [req.userId], {});
        if ("error" in created) {
          if (created.error === "channel_not_found") throw notFound("channel");
          throw conflict("channel is inactive");
        }
        return { conversationId: created.row.id, channelId: created.row.channel_id };
      }
      const joined = await deps.directory.join(req.tenantId, req.conversationId, req.channelId || null, req.userId);
      if (joined === "not_found") throw notFound("conversation");
      if (joined === "channel_inactive") throw conflict("channel is inactive");
      return { conversationId: req.conversationId, channelId: joined.channelId };
    },
  };
}
