import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChannelType } from "../../../gen/converger/v1/channels_pb.js";
import { ActivityType } from "../../../gen/converger/v1/conversations_pb.js";
import { fixtures, startTestApp, type TestApp } from "../../../test/helpers/app.js";
import { type ClientContext, Code, ConnectError, Converger, type ConvergerOptions } from "../src/index.js";

let t: TestApp;
let key: string;
let conversationId: string;

beforeAll(async () => {
  t = await startTestApp();
  key = (await fixtures(t.baseUrl).tenant("SDK Co")).key;
  const server = new Converger({ baseUrl: t.baseUrl, apiKey: key });
  const channel = await server.channels.createChannel({ name: "site", type: ChannelType.WEBSOCKET });
  conversationId = (await server.conversations.createConversation({ channelId: channel.id, members: ["alice"] })).id;
});
afterAll(() => t?.stop());

const clientToken = () => fixtures(t.baseUrl).clientToken(key, conversationId, "alice");

async function rejection(promise: Promise<unknown>): Promise<ConnectError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConnectError);
  return error as ConnectError;
}

describe("RPC clients", () => {
  it("call the RPCs with an API key, typed by the generated messages", async () => {
    const cv = new Converger({ baseUrl: `${t.baseUrl}/`, apiKey: key });
    const posted = await cv.conversations.createActivity({
      conversationId,
      type: ActivityType.MESSAGE,
      text: "from the SDK",
      from: { id: "agent-1", name: "Agent" },
    });
    expect(posted.seq).toBeGreaterThan(0n);
    const { activities } = await cv.conversations.listActivities({ conversationId, watermark: "0" });
    expect(activities.map((a) => [a.seq, a.text])).toContainEqual([posted.seq, "from the SDK"]);
  });

  it("call the RPCs with a static client token as Authorization: Bearer", async () => {
    const cv = new Converger({ baseUrl: t.baseUrl, token: await clientToken() });
    const conversation = await cv.conversations.getConversation({ id: conversationId });
    expect(conversation.members).toContain("alice");
  });

  it("ask getToken only when a call needs a token, and again once after an unauthenticated answer", async () => {
    const tokens = ["not-a-valid-token", await clientToken()];
    let asked = 0;
    const cv = new Converger({ baseUrl: t.baseUrl, getToken: async () => tokens[asked++] ?? "exhausted" });
    expect(asked).toBe(0);
    await cv.conversations.getConversation({ id: conversationId });
    expect(asked).toBe(2);
    await cv.conversations.listActivities({ conversationId });
    expect(asked).toBe(2);
  });

  it("stop after one fresh token is refused too, with Unauthenticated", async () => {
    let asked = 0;
    const cv = new Converger({ baseUrl: t.baseUrl, getToken: () => `bad-${++asked}` });
    const error = await rejection(cv.conversations.getConversation({ id: conversationId }));
    expect(error.code).toBe(Code.Unauthenticated);
    expect(asked).toBe(2);
  });

  it("reject with a ConnectError whose code callers switch on", async () => {
    const cv = new Converger({ baseUrl: t.baseUrl, apiKey: key });
    const missing = await rejection(cv.conversations.getConversation({ id: crypto.randomUUID() }));
    expect(missing.code).toBe(Code.NotFound);
    const wrongKey = new Converger({ baseUrl: t.baseUrl, apiKey: "cvg_not-a-key" });
    const refused = await rejection(wrongKey.conversations.listConversations({}));
    expect(refused.code).toBe(Code.Unauthenticated);
  });
});

/** How the stream and uploads reach the shared context: through the protected accessor. */
class Inspectable extends Converger {
  shared(): ClientContext {
    return this.context();
  }
}

describe("the shared context", () => {
  it("carries the base URL without its slash, the credential and a fetch that works unbound", async () => {
    const options: ConvergerOptions = { baseUrl: `${t.baseUrl}//`, token: "a-token" };
    const context = new Inspectable(options).shared();
    expect(context.baseUrl).toBe(t.baseUrl);
    expect(context.apiKey).toBeUndefined();
    expect(await context.token()).toBe("a-token");
    const { fetch } = context;
    expect((await fetch(`${context.baseUrl}/healthz`)).status).toBe(200);
  });

  it("passes the API key and no token", async () => {
    const context = new Inspectable({ baseUrl: t.baseUrl, apiKey: key }).shared();
    expect(context.apiKey).toBe(key);
    expect(await context.token()).toBeUndefined();
  });
});
