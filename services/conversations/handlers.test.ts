import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ActivityType, ConversationStatus, ConversationsService } from "../../gen/converger/v1/conversations_pb.js";
import { FileSchema } from "../../gen/converger/v1/uploads_pb.js";
import type { Principal } from "../common/access/context.js";
import { createPrincipalTransports } from "../common/access/principal-transport.js";
import { type BusFrame, conversationTopic, createLocalBus } from "../common/events/bus.js";
import { createFakeConversationData, endUser } from "./fake-stores.js";
import { conversationsImpl } from "./handlers/conversations.js";

const TENANT = randomUUID();
const OTHER_TENANT = randomUUID();
const apiKey = (tenantId = TENANT): Principal => ({ kind: "api_key", tenantId });

function setup() {
  const data = createFakeConversationData();
  const bus = createLocalBus((error) => {
    throw error;
  });
  const fileId = randomUUID();
  const impl = conversationsImpl({
    conversations: data.conversationStore,
    activities: data.activityStore,
    writer: data.writer,
    bus,
    // The uploads service answers only for its tenant's completed files.
    async describeFiles(tenantId, ids) {
      if (tenantId !== TENANT || !ids.includes(fileId)) return [];
      return [create(FileSchema, { id: fileId, filename: "a.png", size: 3n, contentType: "image/png" })];
    },
    publicUrl: "https://api.example",
  });
  const as = createPrincipalTransports((router) => router.service(ConversationsService, impl));
  const clientOf = (principal: Principal) => createClient(ConversationsService, as(principal));
  return { data, bus, fileId, clientOf, server: clientOf(apiKey()) };
}

async function codeOf(call: Promise<unknown>): Promise<Code> {
  const error = await call.then(
    () => undefined,
    (e: unknown) => ConnectError.from(e),
  );
  if (!error) throw new Error("the call succeeded");
  return error.code;
}

async function openConversation(s: ReturnType<typeof setup>, members: string[] = []) {
  return s.server.createConversation({ channelId: s.data.addChannel(TENANT), members });
}

const message = (conversationId: string, text: string, extra: object = {}) => ({
  conversationId,
  type: ActivityType.MESSAGE,
  text,
  from: { id: "agent", name: "Agent" },
  ...extra,
});

describe("ConversationsService handlers", () => {
  it("creates a conversation on the tenant's active channel, with unique trimmed members", async () => {
    const s = setup();
    const created = await openConversation(s, [" bob ", "bob", "", "carol"]);
    expect(created).toMatchObject({ tenantId: TENANT, status: ConversationStatus.ACTIVE, lastSeq: 0n });
    expect(created.members).toEqual(["bob", "carol"]);
    expect((await s.server.getConversation({ id: created.id })).id).toBe(created.id);
  });

  it("refuses another tenant's channel as not found and an inactive channel as failed precondition", async () => {
    const s = setup();
    const theirs = s.data.addChannel(OTHER_TENANT);
    expect(await codeOf(s.server.createConversation({ channelId: theirs }))).toBe(Code.NotFound);
    const inactive = s.data.addChannel(TENANT, false);
    expect(await codeOf(s.server.createConversation({ channelId: inactive }))).toBe(Code.FailedPrecondition);
  });

  it("hides a conversation from another tenant and from an end user of another conversation", async () => {
    const s = setup();
    const { id } = await openConversation(s);
    const mine = await openConversation(s);
    expect(await codeOf(s.clientOf(apiKey(OTHER_TENANT)).getConversation({ id }))).toBe(Code.NotFound);
    expect(await codeOf(s.clientOf(endUser(TENANT, mine.id)).getConversation({ id }))).toBe(Code.NotFound);
    expect(await codeOf(s.server.getConversation({ id: randomUUID() }))).toBe(Code.NotFound);
    expect(await codeOf(s.server.getConversation({ id: "not-a-uuid" }))).toBe(Code.InvalidArgument);
  });

  it("numbers activities 1, 2, 3 and lists those after a watermark", async () => {
    const s = setup();
    const { id } = await openConversation(s);
    const seqs = [];
    for (const text of ["one", "two", "three"]) seqs.push((await s.server.createActivity(message(id, text))).seq);
    expect(seqs).toEqual([1n, 2n, 3n]);
    const page = await s.server.listActivities({ conversationId: id, watermark: "1" });
    expect(page.activities.map((a) => a.text)).toEqual(["two", "three"]);
    expect(page.watermark).toBe(3n);
  });

  it("replays an idempotent repeat, and refuses the key with another body as already exists", async () => {
    const s = setup();
    const { id } = await openConversation(s);
    const first = await s.server.createActivity(message(id, "hi", { idempotencyKey: "k-1" }));
    let header: Headers | undefined;
    const again = await s.server.createActivity(message(id, "hi", { idempotencyKey: "k-1" }), {
      onHeader: (h) => {
        header = h;
      },
    });
    expect(again.id).toBe(first.id);
    expect(header?.get("idempotent-replayed")).toBe("true");
    expect(await codeOf(s.server.createActivity(message(id, "changed", { idempotencyKey: "k-1" })))).toBe(
      Code.AlreadyExists,
    );
    expect(s.data.storedActivities()).toHaveLength(1);
  });

  it("posts as the token's user for an end user, and requires from.id of a server", async () => {
    const s = setup();
    const { id } = await openConversation(s, ["alice"]);
    const posted = await s.clientOf(endUser(TENANT, id)).createActivity(message(id, "as me"));
    expect(posted.from).toMatchObject({ id: "alice", name: "ALICE" });
    const anonymous = { conversationId: id, type: ActivityType.MESSAGE, text: "who?" };
    const error = ConnectError.from(await s.server.createActivity(anonymous).catch((e) => e));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toBe("from.id: is required");
  });

  it("refuses empty messages, oversized text and posts to a closed conversation", async () => {
    const s = setup();
    const { id } = await openConversation(s);
    expect(await codeOf(s.server.createActivity(message(id, "   ")))).toBe(Code.InvalidArgument);
    expect(await codeOf(s.server.createActivity(message(id, "a".repeat(10_001))))).toBe(Code.InvalidArgument);
    const closed = await s.server.closeConversation({ id });
    expect(closed.status).toBe(ConversationStatus.CLOSED);
    expect(await codeOf(s.server.createActivity(message(id, "late")))).toBe(Code.FailedPrecondition);
    expect(s.data.storedActivities()).toEqual([]);
  });

  it("expands a file attachment of the tenant and refuses an unknown one as not found", async () => {
    const s = setup();
    const { id } = await openConversation(s);
    const posted = await s.server.createActivity(message(id, "", { attachments: [{ fileId: s.fileId }] }));
    expect(posted.attachments[0]).toMatchObject({
      fileId: s.fileId,
      name: "a.png",
      size: 3n,
      url: `https://api.example/v1/files/${s.fileId}/content`,
    });
    const unknown = message(id, "", { attachments: [{ fileId: randomUUID() }] });
    expect(await codeOf(s.server.createActivity(unknown))).toBe(Code.NotFound);
  });

  it("answers typing with 202 on the bus only, never stored", async () => {
    const s = setup();
    const { id } = await openConversation(s);
    const live: BusFrame[] = [];
    s.bus.subscribe(conversationTopic(id), (frame) => live.push(frame));
    let status: string | null = null;
    await s
      .clientOf(endUser(TENANT, id))
      .createActivity(
        { conversationId: id, type: ActivityType.TYPING },
        { onHeader: (h) => (status = h.get("x-converger-http-status")) },
      );
    expect(status).toBe("202");
    expect(live).toEqual([{ type: "typing", conversation_id: id, from: { id: "alice", name: "ALICE" } }]);
    expect(s.data.storedActivities()).toEqual([]);
  });

  it("resolves an activity id as watermark and refuses a malformed one", async () => {
    const s = setup();
    const { id } = await openConversation(s);
    const first = await s.server.createActivity(message(id, "one"));
    await s.server.createActivity(message(id, "two"));
    const after = await s.server.listActivities({ conversationId: id, watermark: first.id });
    expect(after.activities.map((a) => a.seq)).toEqual([2n]);
    expect(await codeOf(s.server.listActivities({ conversationId: id, watermark: "soon" }))).toBe(Code.InvalidArgument);
    expect(await codeOf(s.server.listActivities({ conversationId: id, watermark: randomUUID() }))).toBe(Code.NotFound);
  });

  it("marks read up to the last seq at most, publishes it, and lists unread counts per user", async () => {
    const s = setup();
    const { id } = await openConversation(s, ["alice"]);
    for (const text of ["a", "b", "c"]) await s.server.createActivity(message(id, text));
    const alice = s.clientOf(endUser(TENANT, id));
    const live: BusFrame[] = [];
    s.bus.subscribe(conversationTopic(id), (frame) => live.push(frame));
    expect(await alice.markRead({ conversationId: id, watermark: 1n, userId: "mallory" })).toMatchObject({
      userId: "alice",
      readUpTo: 1n,
    });
    expect(live).toEqual([{ type: "read", conversation_id: id, user_id: "alice", read_up_to: "1" }]);
    const listed = await alice.listConversations({});
    expect(listed.conversations.map((c) => [c.id, c.unreadCount, c.lastActivity?.text])).toEqual([[id, 2n, "c"]]);
    expect((await s.server.markRead({ conversationId: id, watermark: 99n, userId: "bob" })).readUpTo).toBe(3n);
    expect(await codeOf(s.server.markRead({ conversationId: id }))).toBe(Code.InvalidArgument);
  });
});
