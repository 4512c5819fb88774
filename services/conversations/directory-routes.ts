import type { ServiceImpl } from "@connectrpc/connect";
import type { DirectoryService } from "../../gen/converger/v1/conversations_pb.js";
import { conflict, notFound } from "../common/errors.js";
import type { ConversationStore } from "./store/conversations.js";
import type { DirectoryStore } from "./store/directory.js";

export interface DirectoryDeps {
  directory: DirectoryStore;
  conversations: ConversationStore;
}

export function directoryImpl(deps: DirectoryDeps): ServiceImpl<typeof DirectoryService> {
  return {
    async resolveApiKey(req) {
      const tenant = await deps.directory.tenantByApiKey(req.apiKey);
      return tenant ? { found: true, tenantId: tenant.id, tenantActive: tenant.active } : { found: false };
    },
    async getTenantStatus(req) {
      const tenant = await deps.directory.tenantStatus(req.tenantId);
      return { exists: tenant !== undefined, active: tenant?.active ?? false };
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
