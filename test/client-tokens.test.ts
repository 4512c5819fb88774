import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConversationsService } from "../gen/converger/v1/conversations_pb.js";
import { ADMIN_TOKEN, call, fixtures, startTestApp, type TestApp } from "./helpers/app.js";
import { forge } from "./helpers/tokens.js";
import { openSocket } from "./helpers/ws.js";

let t: TestApp;
let f: ReturnType<typeof fixtures>;
let tenant: { id: string; key: string };
let channel: { id: string; secret: string };

beforeAll(async () => {
  t = await startTestApp();
  f = fixtures(t.baseUrl);
  tenant = await f.tenant("Direct Line Co");
  channel = await f.channel(tenant.key, "websocket");
});
afterAll(() => t?.stop());

const mint = (body: unknown, secret = channel.secret) => call(t.baseUrl, "POST", "/v1/tokens", { token: secret, body });

describe("client tokens from a channel secret", () => {
  it("creates a conversation with the user as member and answers a one-hour token and stream_url", async () => {
    const res = await mint({ user: { id: "alice", name: "Alice" } });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ expires_in: 3600 });
    // WS_PORT is 0 here: the URL names the port the edge is bound to, and opens a stream.
    expect(res.body.stream_url).toBe(`ws://127.0.0.1:${t.app.ports.edge}/ws?token=${res.body.token}`);
    const socket = await openSocket(res.body.stream_url);
    expect(await socket.next((f) => f.type === "connection_established")).toMatchObject({
      conversation_id: res.body.conversation_id,
    });
    socket.ws.close();
    const payload = JSON.parse(Buffer.from(res.body.token.split(".")[1], "base64url").toString());
    expect(payload).toMatchObject({
      sub: "alice",
      name: "Alice",
      token_use: "client",
      tenant_id: tenant.id,
      channel_id: channel.id,
      conversation_id: res.body.conversation_id,
    });
    expect(payload.exp - payload.iat).toBe(3600);
    const conv = await call(t.baseUrl, "GET", `/v1/conversations/${res.body.conversation_id}`, { key: tenant.key });
    expect(conv.body.members).toEqual(["alice"]);
  });

  it("lets the user read and write only its conversation, as itself", async () => {
    const { token, conversation_id: mine } = (await mint({ user: { id: "bob", name: "Bob" } })).body;
    const posted = await call(t.baseUrl, "POST", `/v1/conversations/${mine}/activities`, {
      token,
      body: { type: "message", text: "hi", from: { id: "mallory", name: "Impostor" } },
    });
    expect(posted.status).toBe(201);
    expect(posted.body.from).toEqual({ id: "bob", name: "Bob" });
    expect(
      (await call(t.baseUrl, "GET", `/v1/conversations/${mine}/activities`, { token })).body.activities,
    ).toHaveLength(1);

    const sameTenant = await f.conversation(tenant.key, channel.id);
    const otherTenant = await f.tenant("Elsewhere");
    const foreign = await f.conversation(otherTenant.key, (await f.channel(otherTenant.key)).id);
    for (const id of [sameTenant.id, foreign.id]) {
      expect((await call(t.baseUrl, "GET", `/v1/conversations/${id}`, { token })).status).toBe(404);
      expect((await call(t.baseUrl, "GET", `/v1/conversations/${id}/activities`, { token })).status).toBe(404);
      const write = await call(t.baseUrl, "POST", `/v1/conversations/${id}/activities`, {
        token,
        body: { type: "message", text: "x" },
      });
      expect(write.status).toBe(404);
    }
    // Tenant-level powers stay out of reach.
    expect((await call(t.baseUrl, "POST", `/v1/conversations/${mine}/close`, { token })).status).toBe(403);
    expect((await call(t.baseUrl, "GET", "/v1/channels", { token })).status).toBe(403);
  });

  it("lists only the token's own conversation, with its unread count, though its user is in others", async () => {
    const first = (await mint({ user: { id: "carol" } })).body;
    const second = (
      await mint({ user: { id: "carol" }, conversation_id: (await f.conversation(tenant.key, channel.id)).id })
    ).body;
    await f.message(tenant.key, second.conversation_id, "one");
    await f.message(tenant.key, second.conversation_id, "two");
    await call(t.baseUrl, "POST", `/v1/conversations/${second.conversation_id}/read`, {
      token: second.token,
      body: { watermark: 1 },
    });
    const listed = async (token: string) => {
      const list = await call(t.baseUrl, "GET", "/v1/conversations", { token });
      expect(list.status).toBe(200);
      return list.body.conversations.map(
        (c: { id: string; unread_count: string; last_activity?: { text: string } }) => ({
          id: c.id,
          unread: c.unread_count,
          last: c.last_activity?.text,
        }),
      );
    };
    expect(await listed(first.token)).toEqual([{ id: first.conversation_id, unread: "0", last: undefined }]);
    expect(await listed(second.token)).toEqual([{ id: second.conversation_id, unread: "1", last: "two" }]);
  });

  it("joins an existing conversation of the channel, and only of the channel", async () => {
    const conv = await f.conversation(tenant.key, channel.id, ["agent"]);
    const res = await mint({ user: { id: "dave" }, conversation_id: conv.id });
    expect(res.status).toBe(201);
    const got = await call(t.baseUrl, "GET", `/v1/conversations/${conv.id}`, { key: tenant.key });
    expect(got.body.members).toEqual(["agent", "dave"]);
    const elsewhere = await f.conversation(tenant.key, (await f.channel(tenant.key, "echo")).id);
    expect((await mint({ user: { id: "dave" }, conversation_id: elsewhere.id })).status).toBe(404);
  });

  it("refreshes a still-valid client token", async () => {
    const { token, conversation_id } = (await mint({ user: { id: "erin" } })).body;
    const res = await call(t.baseUrl, "POST", "/v1/tokens/refresh", { token });
    expect(res.status).toBe(200);
    expect(res.body.conversation_id).toBe(conversation_id);
    expect(res.body.token).not.toBe(token);
    const expired = await forge(t, {
      claims: { token_use: "client", tenant_id: tenant.id, channel_id: channel.id, conversation_id },
      exp: Math.floor(Date.now() / 1000) - 120,
    });
    expect((await call(t.baseUrl, "POST", "/v1/tokens/refresh", { token: expired })).status).toBe(401);
    expect((await call(t.baseUrl, "POST", "/v1/tokens/refresh", { key: tenant.key })).status).toBe(403);
  });

  it("refuses tokens for an inactive channel (409), an inactive tenant (403) or a bad secret (401)", async () => {
    const quiet = await f.channel(tenant.key, "websocket");
    await call(t.baseUrl, "PATCH", `/v1/channels/${quiet.id}`, { key: tenant.key, body: { status: "inactive" } });
    expect((await mint({ user: { id: "u" } }, quiet.secret)).status).toBe(409);
    expect((await mint({ user: { id: "u" } }, `cvs_${"x".repeat(43)}`)).status).toBe(401);
    expect((await mint({ user: { id: "u" } }, "cvs_short")).status).toBe(401);
    const sleepy = await f.tenant("Sleepy");
    const sleepyChannel = await f.channel(sleepy.key);
    await call(t.baseUrl, "PATCH", `/admin/v1/tenants/${sleepy.id}`, {
      token: ADMIN_TOKEN,
      body: { status: "inactive" },
    });
    expect((await mint({ user: { id: "u" } }, sleepyChannel.secret)).status).toBe(403);
    expect((await mint({})).status).toBe(400);
  });

  it("stops honouring a rotated channel secret at once", async () => {
    const ch = await f.channel(tenant.key, "websocket");
    expect((await mint({ user: { id: "u" } }, ch.secret)).status).toBe(201);
    await call(t.baseUrl, "POST", `/v1/channels/${ch.id}/rotate-secret`, { key: tenant.key });
    expect((await mint({ user: { id: "u" } }, ch.secret)).status).toBe(401);
  });
});

describe("client tokens from a tenant server", () => {
  it("mints a token for a user of a conversation with the API key", async () => {
    const conv = await f.conversation(tenant.key, channel.id);
    const res = await call(t.baseUrl, "POST", `/v1/conversations/${conv.id}/tokens`, {
      key: tenant.key,
      body: { user: { id: "frank", name: "Frank" } },
    });
    expect(res.status).toBe(201);
    expect(res.body.conversation_id).toBe(conv.id);
    const activities = await call(t.baseUrl, "GET", `/v1/conversations/${conv.id}/activities`, {
      token: res.body.token,
    });
    expect(activities.status).toBe(200);
    const other = await f.tenant("Other server");
    const foreign = await call(t.baseUrl, "POST", `/v1/conversations/${conv.id}/tokens`, {
      key: other.key,
      body: { user: { id: "x" } },
    });
    expect(foreign.status).toBe(404);
  });
});

describe("gRPC with metadata tokens", () => {
  it("accepts a token in authorization metadata and refuses a call without one", async () => {
    const { token, conversation_id } = (await mint({ user: { id: "grace" } })).body;
    const client = createClient(
      ConversationsService,
      createGrpcTransport({ baseUrl: `http://127.0.0.1:${t.app.ports.grpc}` }),
    );
    const res = await client.listActivities(
      { conversationId: conversation_id },
      { headers: { authorization: `Bearer ${token}` } },
    );
    expect(res.activities).toEqual([]);
    await expect(client.listActivities({ conversationId: conversation_id })).rejects.toMatchObject({ code: 16 });
  });
});
