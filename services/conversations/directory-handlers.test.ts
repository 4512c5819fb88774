import { randomUUID } from "node:crypto";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ActivityType, DirectoryService } from "../../gen/converger/v1/conversations_pb.js";
import { createPrincipalTransports } from "../common/access/principal-transport.js";
import { createFakeConversationData } from "./fake-stores.js";
import { directoryImpl } from "./handlers/directory.js";

const TENANT = randomUUID();
const OTHER = randomUUID();

function setup() {
  const data = createFakeConversationData();
  const impl = directoryImpl({
    directory: data.directoryStore,
    conversations: data.conversationStore,
    writer: data.writer,
  });
  const as = createPrincipalTransports((router) => router.service(DirectoryService, impl));
  return { data, client: createClient(DirectoryService, as({ kind: "internal" })) };
}

async function codeOf(call: Promise<unknown>): Promise<Code> {
  const error = await call.then(
    () => undefined,
    (e: unknown) => ConnectError.from(e),
  );
  if (!error) throw new Error("the call succeeded");
  return error.code;
}

const inbound = (channelId: string, messageId: string, extra: object = {}) => ({
  channelId,
  externalId: "wa-123",
  messageId,
  from: { id: "wa-123", name: "Ann" },
  type: ActivityType.MESSAGE,
  text: `text of ${messageId}`,
  ...extra,
});

describe("DirectoryService handlers", () => {
  it("files inbound messages in one conversation per provider thread, each provider message once", async () => {
    const s = setup();
    const channelId = s.data.addChannel(TENANT);
    const first = await s.client.postChannelActivity(inbound(channelId, "m-1"));
    expect(first.replayed).toBe(false);
    expect(first.activity).toMatchObject({
      seq: 1n,
      tenantId: TENANT,
      originChannelId: channelId,
      text: "text of m-1",
    });
    expect(first.activity?.from).toMatchObject({ id: "wa-123", name: "Ann" });
    const second = await s.client.postChannelActivity(inbound(channelId, "m-2"));
    expect(second.activity?.conversationId).toBe(first.activity?.conversationId);
    expect(second.activity?.seq).toBe(2n);
    const again = await s.client.postChannelActivity(inbound(channelId, "m-1", { text: "edited" }));
    expect(again).toMatchObject({ replayed: true, activity: { id: first.activity?.id, text: "text of m-1" } });
    const conversation = s.data.conversation(first.activity?.conversationId as string);
    expect(conversation).toMatchObject({ external_id: "wa-123", members: ["wa-123"], channel_id: channelId });
    expect(s.data.storedActivities()).toHaveLength(2);
  });

  it("refuses inbound for unknown, inactive or orphaned channels and foreign conversations", async () => {
    const s = setup();
    expect(await codeOf(s.client.postChannelActivity(inbound(randomUUID(), "m")))).toBe(Code.NotFound);
    const inactive = s.data.addChannel(TENANT, false);
    expect(await codeOf(s.client.postChannelActivity(inbound(inactive, "m")))).toBe(Code.FailedPrecondition);
    const suspended = s.data.addChannel(TENANT, true, false);
    expect(await codeOf(s.client.postChannelActivity(inbound(suspended, "m")))).toBe(Code.PermissionDenied);
    const channelId = s.data.addChannel(TENANT);
    const theirs = await s.data.conversationStore.create(OTHER, s.data.addChannel(OTHER), [], {});
    if ("error" in theirs) throw new Error("fixture");
    const foreign = inbound(channelId, "m", { conversationId: theirs.row.id });
    expect(await codeOf(s.client.postChannelActivity(foreign))).toBe(Code.NotFound);
    expect(await codeOf(s.client.postChannelActivity(inbound(channelId, "m", { externalId: "" })))).toBe(
      Code.InvalidArgument,
    );
    expect(s.data.storedActivities()).toEqual([]);
  });

  it("joins a user to a conversation once, or opens one on the channel when none is named", async () => {
    const s = setup();
    const channelId = s.data.addChannel(TENANT);
    const opened = await s.client.joinConversation({ tenantId: TENANT, channelId, userId: "alice" });
    expect(opened.channelId).toBe(channelId);
    expect(s.data.conversation(opened.conversationId)?.members).toEqual(["alice"]);
    const join = { tenantId: TENANT, conversationId: opened.conversationId, userId: "bob" };
    for (let i = 0; i < 2; i++) expect((await s.client.joinConversation(join)).channelId).toBe(channelId);
    expect(s.data.conversation(opened.conversationId)?.members).toEqual(["alice", "bob"]);
    expect(await codeOf(s.client.joinConversation({ ...join, tenantId: OTHER }))).toBe(Code.NotFound);
    expect(await codeOf(s.client.joinConversation({ ...join, channelId: randomUUID() }))).toBe(Code.NotFound);
    const closedChannel = s.data.addChannel(TENANT, false);
    expect(await codeOf(s.client.joinConversation({ tenantId: TENANT, channelId: closedChannel, userId: "c" }))).toBe(
      Code.FailedPrecondition,
    );
  });
});
