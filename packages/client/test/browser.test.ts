import { mkdtempSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BrowserContext } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, fixtures, startTestApp, type TestApp } from "../../../test/helpers/app.js";
import { launchChromium } from "../../../test/helpers/browser.js";
import { freePort } from "../../../test/helpers/process.js";

let t: TestApp;
let browser: BrowserContext;
let key: string;
let conversationId: string;
let channelSecret: string;
// The integrator's site, a real loopback server: Chromium's local-network checks refuse
// a socket to loopback from a page that was not itself loaded from there (a routed one).
const site: { url: string; page: string; server?: Server } = { url: "", page: "" };

beforeAll(async () => {
  const sitePort = await freePort();
  site.url = `http://127.0.0.1:${sitePort}/chat`;
  site.server = createServer((_req, res) => res.writeHead(200, { "content-type": "text/html" }).end(site.page));
  await new Promise<void>((resolve) => site.server?.listen(sitePort, "127.0.0.1", resolve));
  const siteOrigin = new URL(site.url).origin;
  // A known port: PUBLIC_URL, whose origin the edge allows, is then the same-origin page's.
  t = await startTestApp({
    PORT: String(await freePort()),
    CORS_ORIGINS: siteOrigin,
    WS_ALLOWED_ORIGINS: siteOrigin,
  });
  const f = fixtures(t.baseUrl);
  key = (await f.tenant("Browser Co")).key;
  const channel = await f.channel(key, "websocket");
  channelSecret = channel.secret;
  conversationId = (await f.conversation(key, channel.id, ["alice"])).id;
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
  site.server?.close();
  await t?.stop();
});

/** A page as an integrator writes it: the module from the gateway, one RPC, the result on screen. */
function page(apiKey: string, conversation: string): string {
  return `<!doctype html><html><body><h1>Converger SDK</h1><pre id="out">loading…</pre>
<script type="module">
import { Converger, Code, ConnectError } from "/sdk/converger.js";
const cv = new Converger({ baseUrl: location.origin, apiKey: ${JSON.stringify(apiKey)} });
const out = document.getElementById("out");
try {
  const posted = await cv.conversations.createActivity({
    conversationId: ${JSON.stringify(conversation)}, type: 1, text: "hello from Chromium", from: { id: "alice" },
  });
  const missing = await cv.conversations.getConversation({ id: crypto.randomUUID() }).catch((e) => e);
  window.sdkResult = {
    seq: String(posted.seq),
    text: posted.text,
    missing: missing instanceof ConnectError && missing.code === Code.NotFound ? "not_found" : String(missing),
  };
} catch (error) {
  window.sdkResult = { failure: String(error) };
}
out.textContent = JSON.stringify(window.sdkResult, null, 2);
</script></body></html>`;
}

/**
 * A chat page for one end user, as the package README shows it, on the
 * integrator's own site (another origin, listed in CORS_ORIGINS and
 * WS_ALLOWED_ORIGINS): the SDK module from the gateway, a client token and
 * stream_url minted by the integrator's server, the stream from watermark 0,
 * a form that sends.
 */
function chatPage(session: { token: string; stream_url: string }): string {
  const sdk = `${t.baseUrl}/sdk/converger.js`;
  return `<!doctype html><html><body><h1>Support chat</h1><ul id="log"></ul>
<form id="say"><input name="text" value="typed in Chromium"><button>Send</button></form><p id="state"></p>
<script type="module">
import { Converger } from "${sdk}";
const cv = new Converger({ baseUrl: ${JSON.stringify(t.baseUrl)}, token: ${JSON.stringify(session.token)} });
const stream = cv.stream({ watermark: "0", url: ${JSON.stringify(session.stream_url)} });
window.received = [];
window.acks = [];
stream.on("state", (s) => (document.getElementById("state").textContent = s));
stream.on("activity", (a) => {
  window.received.push({ seq: String(a.seq), text: a.text, from: a.from?.id });
  document.getElementById("log").append(Object.assign(document.createElement("li"), { textContent: a.from?.id + ": " + a.text }));
});
stream.on("error", (e) => (window.streamError = e.code + " " + e.message));
document.getElementById("say").addEventListener("submit", async (event) => {
  event.preventDefault();
  const sent = await stream.send({ text: event.target.text.value });
  window.acks.push(String(sent.seq));
});
</script></body></html>`;
}

describe("the browser build in Chromium", () => {
  it("streams an end user's conversation from watermark 0 and sends from a form", async () => {
    const minted = await call(t.baseUrl, "POST", "/v1/tokens", {
      token: channelSecret,
      body: { user: { id: "bea", name: "Bea" } },
    });
    const conversation = minted.body.conversation_id as string;
    const post = (text: string) =>
      call(t.baseUrl, "POST", `/v1/conversations/${conversation}/activities`, {
        key,
        body: { type: "message", text, from: { id: "agent" } },
      });
    await post("welcome, before the page opened");
    site.page = chatPage(minted.body as { token: string; stream_url: string });
    const tab = await browser.newPage();
    await tab.goto(site.url);
    await tab.getByText("open", { exact: true }).waitFor();
    await post("live, while the page is open");
    await tab.getByRole("button", { name: "Send" }).click();
    const received = () => tab.evaluate(() => (globalThis as { received?: unknown[] }).received?.length ?? 0);
    await expect.poll(received, { timeout: 15_000 }).toBe(3);
    const state = await tab.evaluate(() => {
      const g = globalThis as { received?: unknown; acks?: unknown; streamError?: unknown };
      return { received: g.received, acks: g.acks, error: g.streamError };
    });
    expect(state).toEqual({
      received: [
        { seq: "1", text: "welcome, before the page opened", from: "agent" },
        { seq: "2", text: "live, while the page is open", from: "agent" },
        { seq: "3", text: "typed in Chromium", from: "bea" },
      ],
      acks: ["3"],
      error: undefined,
    });
    const stored = await call(t.baseUrl, "GET", `/v1/conversations/${conversation}/activities?watermark=2`, { key });
    expect(stored.body.activities.map((a: { text: string }) => a.text)).toEqual(["typed in Chromium"]);
    const screenshot = join(mkdtempSync(join(tmpdir(), "converger-screenshot-")), "chat-page.png");
    await tab.screenshot({ path: screenshot });
    console.log(`screenshot: ${screenshot}`);
  }, 60_000);

  it("loads /sdk/converger.js from the gateway as a module and makes RPC calls", async () => {
    const tab = await browser.newPage();
    // The page itself is the test's; everything it loads and calls is the real gateway's, same origin.
    const pageUrl = `${t.baseUrl}/sdk-test.html`;
    await tab.route(pageUrl, (route) => route.fulfill({ contentType: "text/html", body: page(key, conversationId) }));
    const script = tab.waitForResponse(`${t.baseUrl}/sdk/converger.js`);
    await tab.goto(pageUrl);
    expect((await script).headers()["content-type"]).toBe("text/javascript; charset=utf-8");
    const result = await (
      await tab.waitForFunction(() => (globalThis as { sdkResult?: unknown }).sdkResult)
    ).jsonValue();
    expect(result).toEqual({ seq: "1", text: "hello from Chromium", missing: "not_found" });

    const stored = await call(t.baseUrl, "GET", `/v1/conversations/${conversationId}/activities?watermark=0`, { key });
    expect(stored.body.activities.map((a: { text: string }) => a.text)).toEqual(["hello from Chromium"]);
    const screenshot = join(mkdtempSync(join(tmpdir(), "converger-screenshot-")), "sdk-page.png");
    await tab.screenshot({ path: screenshot });
    console.log(`screenshot: ${screenshot}`);
  }, 60_000);
});
