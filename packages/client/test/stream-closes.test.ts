import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fixtures, startTestApp, type TestApp } from "../../../test/helpers/app.js";
import { forge } from "../../../test/helpers/tokens.js";
import { createStream } from "../src/stream.js";
import { startEdgeProxy } from "./edge-proxy.js";
import { reach, recordActivities, testContext, upTo } from "./helpers.js";

let t: TestApp;
let f: ReturnType<typeof fixtures>;
let tenant: { id: string; key: string };
let channel: { id: string };
let edgeUrl: string;

beforeAll(async () => {
  t = await startTestApp();
  f = fixtures(t.baseUrl);
  tenant = await f.tenant("Close Codes Co");
  channel = await f.channel(tenant.key, "websocket");
  edgeUrl = `ws://127.0.0.1:${t.app.ports.edge}/ws`;
});
afterAll(() => t?.stop());

describe("close codes that reconnect", () => {
  it("reconnects with a fresh token after a 4408 and resumes without a gap", async () => {
    const { id } = await f.conversation(tenant.key, channel.id);
    const claims = { token_use: "client", tenant_id: tenant.id, channel_id: channel.id, conversation_id: id };
    const short = await forge(t, { claims, exp: Math.floor(Date.now() / 1000) + 2 });
    const tokens = [short, short];
    // The renewal before expiry gets the same token back (nothing to renew with): the edge then closes 4408.
    const { context, counter } = testContext(t.baseUrl, {
      getToken: async () => tokens.shift() ?? forge(t, { claims }),
    });
    const stream = createStream(context, { url: edgeUrl });
    const seen = recordActivities(stream);
    const closes: string[] = [];
    stream.on("state", (s) => closes.push(s));
    await f.message(tenant.key, id, "before");
    await seen.waitFor(1);
    await reach(stream, "reconnecting");
    await reach(stream, "open");
    await f.message(tenant.key, id, "after");
    await seen.waitFor(2);
    expect(seen.seqs()).toEqual(upTo(2));
    expect(counter).toEqual({ attempts: 2, tokenCalls: 3 });
    expect(closes).toEqual(["open", "reconnecting", "open"]);
    stream.close();
  });

  it("backs off and reconnects after a 4429", async () => {
    const { id } = await f.conversation(tenant.key, channel.id);
    const token = await f.clientToken(tenant.key, id, "frank");
    let limited = false;
    const proxy = await startEdgeProxy(edgeUrl, {
      toClient(frame, socket) {
        if (frame.type !== "connection_established" || limited) return true;
        limited = true;
        socket.client.close(4429, "rate limited");
        return false;
      },
    });
    const { context, counter } = testContext(t.baseUrl, { token });
    const stream = createStream(context, { url: proxy.url, maxBackoffMs: 300 });
    const seen = recordActivities(stream);
    await reach(stream, "open");
    expect(counter.attempts).toBe(2);
    await f.message(tenant.key, id, "after the limit");
    await seen.waitFor(1);
    expect(seen.seqs()).toEqual([1]);
    stream.close();
    await proxy.stop();
  });
});
