import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, fixtures, startTestApp, type TestApp } from "../../../test/helpers/app.js";

// As the machine notes say: without the background-networking flags Chromium keeps dialling out.
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

let t: TestApp;
let browser: BrowserContext;
let key: string;
let conversationId: string;

beforeAll(async () => {
  t = await startTestApp();
  const f = fixtures(t.baseUrl);
  key = (await f.tenant("Browser Co")).key;
  conversationId = (await f.conversation(key, (await f.channel(key)).id, ["alice"])).id;
  browser = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), "converger-chromium-")), {
    executablePath: "/usr/bin/chromium",
    args: CHROMIUM_ARGS,
    headless: true,
  });
});
afterAll(async () => {
  await browser?.close();
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

describe("the browser build in Chromium", () => {
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
