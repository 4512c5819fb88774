import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Event } from "../../../gen/converger/v1/events_pb.js";
import { call, fixtures, startTestApp, type TestApp } from "../../../test/helpers/app.js";
import { forge } from "../../../test/helpers/tokens.js";
import { createStream } from "../src/stream.js";
import { startEdgeProxy } from "./edge-proxy.js";
import { reach, recordActivities, testContext } from "./helpers.js";

let t: TestApp;
let f: ReturnType<typeof fixtures>;
let tenant: { id: string; key: string };
let channel: { id: string };
let edgeUrl: string;

beforeAll(async () => {
  t = await startTestApp();
  f = fixtures(t.baseUrl);
  tenant = await f.tenant("OAuth Stream Co");
  channel = await f.channel(tenant.key, "websocket");
  edgeUrl = `ws://127.0.0.1:${t.app.ports.edge}/ws`;
});
afterAll(() => t?.stop());

const oauthToken = () =>
  forge(t, { claims: { tenant_id: tenant.id, scope: "conversations:read conversations:write" } });

const bySeqPerConversation = (activities: { conversationId: string; seq: bigint }[], conversationId: string) =>
  activities.filter((a) => a.conversationId === conversationId).map((a) => Number(a.seq));

describe("stream with an OAuth token", () => {
  it("subscribes by frame, resumes each conversation from its own last seq after a 1001, and unsubscribes", async () => {
    const first = await f.conversation(tenant.key, channel.id);
    const second = await f.conversation(tenant.key, channel.id);
    await f.message(tenant.key, first.id, "history");
    const proxy = await startEdgeProxy(edgeUrl);
    const { context } = testContext(t.baseUrl, { token: await oauthToken() });
    const stream = createStream(context, {
      url: proxy.url,
      conversationId: first.id,
      watermark: "0",
      maxBackoffMs: 200,
    });
    const seen = recordActivities(stream);
    await seen.waitFor(1);
    await f.message(tenant.key, second.id, "before the watermark");
    stream.subscribe(second.id, "1");
    await f.message(tenant.key, second.id, "after the watermark");
    await f.message(tenant.key, first.id, "first 2");
    await seen.waitFor(3);
    proxy.closeAll(1001, "server going away");
    await reach(stream, "reconnecting");
    await f.message(tenant.key, first.id, "first 3");
    await f.message(tenant.key, second.id, "second 3");
    await seen.waitFor(5);
    expect(bySeqPerConversation(seen.activities, first.id)).toEqual([1, 2, 3]);
    expect(bySeqPerConversation(seen.activities, second.id)).toEqual([2, 3]);
    stream.unsubscribe(second.id);
    await f.message(tenant.key, second.id, "not followed any more");
    // The sentinel comes after: an unwanted frame would have come before it.
    await f.message(tenant.key, first.id, "sentinel");
    await seen.waitFor(6);
    expect(seen.activities.at(-1)?.text).toBe("sentinel");
    expect(bySeqPerConversation(seen.activities, second.id)).toEqual([2, 3]);
    expect(stream.stats().gaps).toBe(0);
    stream.close();
    await proxy.stop();
  });

  it("sends as the OAuth client itself, or as the speaker it names", async () => {
    const conversation = await f.conversation(tenant.key, channel.id);
    const stream = createStream(testContext(t.baseUrl, { token: await oauthToken() }).context, {
      url: edgeUrl,
      conversationId: conversation.id,
    });
    const own = await stream.send({ conversationId: conversation.id, text: "as the worker" });
    expect(own.from?.id).toBe("cvc_forged");
    const named = await stream.send({
      conversationId: conversation.id,
      text: "as an agent",
      from: { id: "agent-7", name: "Agent Seven" },
    });
    expect(named.from).toMatchObject({ id: "agent-7", name: "Agent Seven" });
    expect(named.seq).toBe(own.seq + 1n);
    stream.close();
  });

  it("follows the tenant event feed", async () => {
    const token = await forge(t, { claims: { tenant_id: tenant.id, scope: "conversations:read" } });
    const stream = createStream(testContext(t.baseUrl, { token }).context, { url: edgeUrl, tenantId: tenant.id });
    const events: Event[] = [];
    stream.on("event", (event) => events.push(event));
    await reach(stream, "open");
    const res = await call(t.baseUrl, "POST", "/v1/events", {
      key: tenant.key,
      headers: { "X-Tenant-ID": tenant.id },
      body: { message: "deployed" },
    });
    expect(res.status).toBeLessThan(300);
    await expect.poll(() => events.map((e) => e.message)).toEqual(["deployed"]);
    expect(events[0]?.tenantId).toBe(tenant.id);
    stream.close();
  });
});
