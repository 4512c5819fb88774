import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fixtures, startTestApp, type TestApp } from "../../../test/helpers/app.js";
import { forge } from "../../../test/helpers/tokens.js";
import { openSocket } from "../../../test/helpers/ws.js";
import { createStream, type StreamError } from "../src/stream.js";
import { startEdgeProxy } from "./edge-proxy.js";
import { reach, recordActivities, storedActivities, testContext, upTo } from "./helpers.js";

let t: TestApp;
let f: ReturnType<typeof fixtures>;
let tenant: { id: string; key: string };
let channel: { id: string; secret: string };
let edgeUrl: string;

beforeAll(async () => {
  t = await startTestApp();
  f = fixtures(t.baseUrl);
  tenant = await f.tenant("Stream Co");
  channel = await f.channel(tenant.key, "websocket");
  edgeUrl = `ws://127.0.0.1:${t.app.ports.edge}/ws`;
});
afterAll(() => t?.stop());

async function conversationWithUser(userId: string) {
  const { id } = await f.conversation(tenant.key, channel.id);
  return { conversationId: id, token: await f.clientToken(tenant.key, id, userId) };
}

const nextError = (stream: ReturnType<typeof createStream>) =>
  new Promise<StreamError>((resolve) => stream.on("error", resolve));

describe("stream", () => {
  it("delivers history then live activities once each, in order, and resolves a send with the stored activity", async () => {
    const { conversationId, token } = await conversationWithUser("alice");
    for (const text of ["one", "two", "three"]) await f.message(tenant.key, conversationId, text);
    const { context } = testContext(t.baseUrl, { token });
    const stream = createStream(context, { url: edgeUrl, watermark: "0" });
    const seen = recordActivities(stream);
    await seen.waitFor(3);
    const sent = await stream.send({ text: "from the client", clientId: "c-1" });
    expect(sent).toMatchObject({ seq: 4n, text: "from the client", from: { id: "alice" } });
    await f.message(tenant.key, conversationId, "five");
    await seen.waitFor(5);
    expect(seen.seqs()).toEqual(upTo(5));
    const iterated: bigint[] = [];
    const iteration = (async () => {
      for await (const activity of stream) iterated.push(activity.seq);
    })();
    await f.message(tenant.key, conversationId, "six");
    await seen.waitFor(6);
    stream.close();
    await iteration;
    expect(iterated).toEqual([6n]);
    expect(stream.state).toBe("closed");
    await expect(stream.send({ text: "too late" })).rejects.toMatchObject({ code: "cancelled" });
  });

  it("resumes after 1001 closes and drops every frame it delivered already", async () => {
    const { conversationId, token } = await conversationWithUser("bob");
    // Every activity frame reaches the client twice: the second copy must be dropped.
    const proxy = await startEdgeProxy(edgeUrl, {
      toClient(frame, socket) {
        if (frame.type === "activity") socket.client.send(JSON.stringify(frame));
        return true;
      },
    });
    const { context, counter } = testContext(t.baseUrl, { token });
    const stream = createStream(context, { url: proxy.url, maxBackoffMs: 200 });
    const seen = recordActivities(stream);
    await reach(stream, "open");
    for (let i = 1; i <= 30; i++) {
      await f.message(tenant.key, conversationId, `m${i}`);
      if (i % 10 === 0) {
        await seen.waitFor(i);
        proxy.closeAll(1001, "server going away");
      }
    }
    await seen.waitFor(30);
    expect(seen.seqs()).toEqual(upTo(30));
    const stats = stream.stats();
    expect(stats.duplicates).toBeGreaterThanOrEqual(30);
    expect(stats.gaps).toBe(0);
    expect(counter.attempts).toBeGreaterThanOrEqual(3);
    stream.close();
    await proxy.stop();
  });

  it("resends a send whose ack was lost with the same client_id, and the server stores it once", async () => {
    const { conversationId, token } = await conversationWithUser("carol");
    const published: string[] = [];
    let acksLost = 0;
    const proxy = await startEdgeProxy(edgeUrl, {
      toServer(frame) {
        if (frame.type === "activity") published.push(frame.client_id);
        return true;
      },
      toClient(frame, socket) {
        if (frame.type !== "ack" || acksLost > 0) return true;
        // Stored and acked by the server, but the connection dies before the ack arrives.
        acksLost++;
        socket.client.terminate();
        return false;
      },
    });
    const { context } = testContext(t.baseUrl, { token });
    const stream = createStream(context, { url: proxy.url, maxBackoffMs: 200 });
    const sent = await stream.send({ text: "exactly once" });
    expect(acksLost).toBe(1);
    expect(published).toHaveLength(2);
    expect(published[0]).toBe(published[1]);
    const stored = await storedActivities(t.baseUrl, tenant.key, conversationId);
    expect(stored.map((a) => [a.seq, a.text])).toEqual([["1", "exactly once"]]);
    expect(sent.id).toBe(stored[0]?.id);
    stream.close();
    await proxy.stop();
  });

  it.each([4401, 4403])("stops with a clear error on a %i close and never reconnects", async (code) => {
    const { token } = await conversationWithUser(`dave-${code}`);
    const proxy = await startEdgeProxy(edgeUrl, {
      toClient(frame, socket) {
        if (frame.type === "connection_established") socket.client.close(code, "refused");
        return true;
      },
    });
    const { context, counter } = testContext(t.baseUrl, { token });
    const stream = createStream(context, { url: proxy.url, minBackoffMs: 1, maxBackoffMs: 5 });
    const error = await nextError(stream);
    expect(error).toMatchObject({ code: code === 4401 ? "unauthenticated" : "permission_denied" });
    expect(error.details.closeCode).toBe(code);
    expect(stream.state).toBe("closed");
    await expect(stream.send({ text: "after" })).rejects.toBe(error);
    // A healthy stream through the same proxy opening shows that time passed for a retry: none came.
    const sentinel = createStream(testContext(t.baseUrl, { token }).context, { url: edgeUrl });
    await reach(sentinel, "open");
    sentinel.close();
    expect(counter.attempts).toBe(1);
    expect(proxy.sockets).toHaveLength(1);
    await proxy.stop();
  });

  it("stops after one fresh token when the edge refuses the upgrade with 401", async () => {
    const { context, counter } = testContext(t.baseUrl, { getToken: async () => "not.a.jwt" });
    const stream = createStream(context, { url: edgeUrl, minBackoffMs: 1, maxBackoffMs: 5 });
    const error = await nextError(stream);
    expect(error).toMatchObject({ code: "unauthenticated", message: "the edge refused the token (401)" });
    expect(stream.state).toBe("closed");
    expect(counter).toEqual({ attempts: 2, tokenCalls: 2 });
  });

  it("renews a token that expires mid-stream through getToken, on the same socket and without a gap", async () => {
    const { conversationId } = await conversationWithUser("erin");
    const claims = {
      token_use: "client",
      tenant_id: tenant.id,
      channel_id: channel.id,
      conversation_id: conversationId,
    };
    const expiresAt = Math.floor(Date.now() / 1000) + 3;
    const short = await forge(t, { claims, exp: expiresAt });
    let calls = 0;
    const { context, counter } = testContext(t.baseUrl, {
      getToken: async () => (calls++ === 0 ? short : forge(t, { claims, exp: expiresAt + 600 })),
    });
    const stream = createStream(context, { url: edgeUrl });
    const seen = recordActivities(stream);
    await f.message(tenant.key, conversationId, "before expiry");
    await seen.waitFor(1);
    // A socket with the same short token that is not renewed: the edge ends it when the token expires.
    const lapsing = await openSocket(`${edgeUrl}?token=${short}`);
    expect((await lapsing.closed).code).toBe(4408);
    await f.message(tenant.key, conversationId, "after expiry");
    await seen.waitFor(2);
    expect(seen.seqs()).toEqual(upTo(2));
    expect(counter.tokenCalls).toBe(2);
    expect(counter.attempts).toBe(1);
    expect(stream.state).toBe("open");
    stream.close();
  });
});
