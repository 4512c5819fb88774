import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Principal } from "../common/access/context.js";
import { conflict, notFound } from "../common/rpc/errors.js";
import type { ActivityDraft, ActivityWriter, WriteOutcome } from "./activity-writer.js";
import type { ActivityStore } from "./store/activities.js";
import type { ConversationStore, ListedConversation } from "./store/conversations.js";
import type { DirectoryStore } from "./store/directory.js";
import { type ActivityRow, activityMessage, type ConversationRow } from "./store/rows.js";

/**
 * In-memory stand-ins for the conversations service's PostgreSQL stores and
 * group-commit writer, for handler tests. They keep the rules the SQL keeps
 * (tenant scoping, gap-free seqs, idempotency keys per tenant and
 * conversation), so a handler that forgets to pass the tenant or to check a
 * status gets the answer PostgreSQL would have given it.
 */
export function createFakeConversationData() {
  const conversations = new Map<string, ConversationRow>();
  const activities: ActivityRow[] = [];
  const keys = new Map<string, { hash: string; row: ActivityRow }>();
  const reads = new Map<string, bigint>();
  const channels = new Map<string, { tenantId: string; active: boolean; tenantActive: boolean }>();

  const ownConversation = (tenantId: string, id: string) => {
    const row = conversations.get(id);
    return row?.tenant_id === tenantId ? row : undefined;
  };

  function insertConversation(
    tenantId: string,
    channelId: string,
    members: string[],
    metadata: ConversationRow["metadata"],
    externalId: string | null,
  ): ConversationRow {
    const now = new Date();
    const row: ConversationRow = {
      id: randomUUID(),
      tenant_id: tenantId,
      channel_id: channelId,
      external_id: externalId,
      status: "active",
      members,
      metadata,
      last_seq: "0",
      created_at: now,
      updated_at: now,
      sort_key: now.toISOString(),
    };
    conversations.set(row.id, row);
    return row;
  }

  const conversationStore: ConversationStore = {
    async create(tenantId, channelId, members, metadata) {
      const channel = channels.get(channelId);
      if (channel?.tenantId !== tenantId) return { error: "channel_not_found" };
      if (!channel.active) return { error: "channel_inactive" };
      return { row: insertConversation(tenantId, channelId, members, metadata, null) };
    },
    async get(tenantId, id) {
      return ownConversation(tenantId, id);
    },
    async close(tenantId, id) {
      const row = ownConversation(tenantId, id);
      if (row) row.status = "closed";
      return row;
    },
    async list(tenantId, page, viewer) {
      const rows = [...conversations.values()].filter(
        (c) =>
          c.tenant_id === tenantId &&
          (!viewer || (c.id === viewer.conversationId && c.members.includes(viewer.userId))),
      );
      return rows.slice(page.offset, page.offset + page.limit + 1).map(
        (c): ListedConversation => ({
          ...c,
          last_activity: activities.find((a) => a.conversation_id === c.id && a.seq === c.last_seq) ?? null,
          unread_count: viewer ? String(BigInt(c.last_seq) - (reads.get(`${c.id}/${viewer.userId}`) ?? 0n)) : null,
        }),
      );
    },
    async markRead(tenantId, conversationId, userId, upTo) {
      const row = ownConversation(tenantId, conversationId);
      if (!row) return undefined;
      const last = BigInt(row.last_seq);
      const wanted = upTo === undefined || upTo > last ? last : upTo;
      const key = `${conversationId}/${userId}`;
      const readUpTo = (reads.get(key) ?? 0n) > wanted ? (reads.get(key) as bigint) : wanted;
      reads.set(key, readUpTo);
      return readUpTo;
    },
  };

  const activityStore: ActivityStore = {
    async listAfter(tenantId, conversationId, after, limit) {
      return activities
        .filter((a) => a.tenant_id === tenantId && a.conversation_id === conversationId && BigInt(a.seq) > after)
        .slice(0, limit);
    },
    async seqOf(tenantId, conversationId, activityId) {
      const row = activities.find(
        (a) => a.id === activityId && a.conversation_id === conversationId && a.tenant_id === tenantId,
      );
      return row ? BigInt(row.seq) : undefined;
    },
  };

  const writer: ActivityWriter = {
    async write(draft: ActivityDraft): Promise<WriteOutcome> {
      const conversation = ownConversation(draft.tenantId, draft.conversationId);
      if (!conversation) throw notFound("conversation");
      if (conversation.status !== "active") throw conflict("conversation is closed");
      const key = draft.idempotency && `${draft.tenantId}|${draft.conversationId}|${draft.idempotency.key}`;
      const hash = draft.idempotency?.requestHash.toString("hex") ?? "";
      const earlier = key ? keys.get(key) : undefined;
      if (earlier && earlier.hash !== hash) {
        throw new ConnectError("Idempotency-Key was already used with a different request", Code.AlreadyExists);
      }
      if (earlier) return { row: earlier.row, activity: activityMessage(earlier.row), replayed: true };
      conversation.last_seq = String(BigInt(conversation.last_seq) + 1n);
      const row: ActivityRow = {
        id: draft.id,
        conversation_id: draft.conversationId,
        tenant_id: draft.tenantId,
        seq: conversation.last_seq,
        type: draft.type,
        text: draft.text,
        attachments: draft.attachments,
        from_id: draft.fromId,
        from_name: draft.fromName,
        metadata: draft.metadata,
        origin_channel_id: draft.originChannelId,
        created_at: new Date(),
      };
      activities.push(row);
      if (key) keys.set(key, { hash, row });
      return { row, activity: activityMessage(row), replayed: false };
    },
  };

  // What DirectoryService reads for other services, over the same rows.
  const directoryStore: Partial<DirectoryStore> = {
    async channelRecord(channelId) {
      const c = channels.get(channelId);
      if (!c) return undefined;
      const { tenantId, active, tenantActive } = c;
      return {
        id: channelId,
        tenant_id: tenantId,
        type: "webhook",
        channel_active: active,
        tenant_active: tenantActive,
        config: {},
        secret: "cvs_x",
      };
    },
    async conversationRoute(conversationId) {
      const c = conversations.get(conversationId);
      return c && { tenant_id: c.tenant_id, channel_id: c.channel_id, external_id: c.external_id };
    },
    async conversationForExternal(tenantId, channelId, externalId, memberId) {
      const known = [...conversations.values()].find((c) => c.channel_id === channelId && c.external_id === externalId);
      return (known ?? insertConversation(tenantId, channelId, [memberId], {}, externalId)).id;
    },
    async join(tenantId, conversationId, channelId, userId) {
      const c = ownConversation(tenantId, conversationId);
      if (!c || (channelId && c.channel_id !== channelId)) return "not_found" as const;
      if (!channels.get(c.channel_id)?.active) return "channel_inactive" as const;
      if (!c.members.includes(userId)) c.members = [...c.members, userId];
      return { channelId: c.channel_id };
    },
  };

  return {
    conversationStore,
    activityStore,
    writer,
    directoryStore: directoryStore as DirectoryStore,
    /** A channel the fake stores know, as the channels table would hold it. */
    addChannel(tenantId: string, active = true, tenantActive = true): string {
      const id = randomUUID();
      channels.set(id, { tenantId, active, tenantActive });
      return id;
    },
    conversation: (id: string) => conversations.get(id),
    storedActivities: () => [...activities],
  };
}

/** A client token's principal for one conversation. */
export function endUser(tenantId: string, conversationId: string, userId = "alice"): Principal {
  return { kind: "end_user", tenantId, userId, userName: userId.toUpperCase(), conversationId, channelId: "" };
}
