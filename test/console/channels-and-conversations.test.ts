import type { BrowserContext, Page, WebSocketRoute } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { call, fixtures, startTestApp, type TestApp } from "../helpers/app.js";
import { launchChromium, screenshot, signIn } from "../helpers/browser.js";
import { freePort } from "../helpers/process.js";

let t: TestApp;
let f: ReturnType<typeof fixtures>;
let browser: BrowserContext;
// Uncaught errors and unhandled rejections of the pages: every failure must show as a message instead.
const pageErrors: Error[] = [];

beforeAll(async () => {
  // A known port: PUBLIC_URL (the console's origin, which the edge accepts as Origin) is then the pages' own.
  t = await startTestApp({ PORT: String(await freePort()) });
  f = fixtures(t.baseUrl);
  browser = await launchChromium();
});
afterEach(() => {
  expect(pageErrors).toEqual([]);
});
afterAll(async () => {
  await browser?.close();
  await t?.stop();
});

// What an operator types for each of the eight types, by the field's visible label; values the server accepts.
const FORMS: Record<string, Record<string, string>> = {
  echo: {},
  websocket: {},
  webhook: {
    "URL (required)": "https://hooks.example.com/in",
    Headers: "X-Token: abc\nX-Team: support",
    Method: "PUT",
    "Rate limit per second": "5",
  },
  whatsapp_meta: {
    "Phone number ID (required)": "123",
    "Access token (required)": "EAAG",
    "Verify token (required)": "vt",
    "App secret (required)": "as",
  },
  whatsapp_infobip: {
    "Base URL (required)": "https://api.infobip.com",
    "API key (required)": "k",
    "Sender (required)": "44786",
  },
  telegram: { "Bot token (required)": "123:ABC" },
  instagram: { "Instagram account ID (required)": "17841", "Access token (required)": "IGQ" },
  messenger: {
    "Page ID (required)": "p1",
    "Page access token (required)": "EAAP",
    "Base URL": "https://graph.example.com/v18.0",
  },
};

const CHANNEL_TYPES = Object.keys(FORMS);

type StoredChannel = { id: string; name: string; type: string; status: string; config: Record<string, unknown> };
const storedChannels = async (key: string) =>
  (await call<{ channels: StoredChannel[] }>(t.baseUrl, "GET", "/v1/channels?limit=100", { key })).body.channels;

const rowOf = (page: Page, name: string) => page.locator("tr", { has: page.getByText(name, { exact: true }) });

/** The error slot of a labelled control (field() ties them with aria-describedby). */
async function errorOf(page: Page, label: string) {
  const id = await page.getByLabel(label, { exact: true }).getAttribute("aria-describedby");
  return page.locator(`[id="${id}"]`);
}

async function openAsOperator(path: string): Promise<Page> {
  const page = await browser.newPage();
  // Shorter than the test's own timeout, so that a failure names the locator it waited for.
  page.setDefaultTimeout(10_000);
  page.on("pageerror", (error) => pageErrors.push(error));
  await signIn(page, t.baseUrl);
  await page.getByRole("heading", { name: "Tenants", level: 1 }).waitFor();
  await page.goto(`${t.baseUrl}${path}`);
  return page;
}

describe("the channels page", () => {
  it("creates a channel of each of the eight types from its generated form, showing each secret once", async () => {
    const tenant = await f.tenant("Channel Co");
    const page = await openAsOperator(`/admin/channels?tenant=${tenant.id}`);
    await page.getByRole("button", { name: "Create channel" }).waitFor();
    expect(await page.getByLabel("Tenant").inputValue()).toBe(tenant.id);
    const offered = await page
      .getByLabel("Type")
      .locator("option")
      .evaluateAll((options) => options.map((o) => o.getAttribute("value")));
    expect(offered.sort()).toEqual([...CHANNEL_TYPES].sort());

    for (const type of CHANNEL_TYPES) {
      const name = `${type} line`;
      await page.getByLabel("Name", { exact: true }).fill(name);
      await page.getByLabel("Type").selectOption(type);
      await page.getByRole("group", { name: `Settings of the ${type} type` }).waitFor();
      for (const [label, value] of Object.entries(FORMS[type] ?? {})) {
        const control = page.getByLabel(label, { exact: true });
        if (label === "Method") await control.selectOption(value);
        else await control.fill(value);
      }
      if (type === "webhook") await screenshot(page, "console-channels-webhook-form");
      await page.getByRole("button", { name: "Create channel" }).click();
      await page.getByRole("status").getByText(`Channel “${name}” (${type}) created.`).waitFor();
      expect(await page.locator("[data-secret=channel-secret]").textContent()).toMatch(/\S{16,}/);
      await rowOf(page, name).getByRole("cell", { name: type, exact: true }).waitFor();
    }
    await screenshot(page, "console-channels");

    const stored = await storedChannels(tenant.key);
    expect(stored.map((c) => c.type).sort()).toEqual([...CHANNEL_TYPES].sort());
    const byType = Object.fromEntries(stored.map((c) => [c.type, c]));
    expect(byType.webhook?.config).toEqual({
      url: "https://hooks.example.com/in",
      headers: { "X-Token": "abc", "X-Team": "support" },
      method: "PUT",
      rate_limit_per_second: 5,
    });
    expect(byType.whatsapp_meta?.config).toMatchObject({ phone_number_id: "123", access_token: "[redacted]" });
    expect(byType.messenger?.config).toMatchObject({ page_id: "p1", base_url: "https://graph.example.com/v18.0" });
    await page.close();
  });

  it("shows a config error next to its field and stores nothing", async () => {
    const tenant = await f.tenant("Typo Co");
    const page = await openAsOperator(`/admin/channels?tenant=${tenant.id}`);
    await page.getByLabel("Name", { exact: true }).fill("broken hook");
    await page.getByLabel("Type").selectOption("webhook");
    await page.getByLabel("URL (required)", { exact: true }).fill("not a url");
    await page.getByRole("button", { name: "Create channel" }).click();
    const urlError = await errorOf(page, "URL (required)");
    await expect.poll(() => urlError.textContent()).toBe("must be an absolute http(s) URL");
    expect(await urlError.isVisible()).toBe(true);
    expect(await page.getByText("No channel yet: create the first one above.").isVisible()).toBe(true);
    await screenshot(page, "console-channels-error");

    // A header line that is not "Name: value" is refused in the page, next to the headers.
    await page.getByLabel("URL (required)", { exact: true }).fill("https://hooks.example.com/in");
    await page.getByLabel("Headers", { exact: true }).fill("X-Token abc");
    await page.getByRole("button", { name: "Create channel" }).click();
    const headersError = await errorOf(page, "Headers");
    await expect.poll(() => headersError.textContent()).toBe("line 1 is not Name: value");
    expect(await urlError.isVisible()).toBe(false);
    expect(await storedChannels(tenant.key)).toEqual([]);
    await page.close();
  });

  it("disables and enables a channel and rotates its secret, the old one refused from then on", async () => {
    const tenant = await f.tenant("Rotation Co");
    const channel = await f.channel(tenant.key, "websocket");
    const mint = (secret: string) =>
      call(t.baseUrl, "POST", "/v1/tokens", { token: secret, body: { user: { id: "alice" } } });
    const page = await openAsOperator(`/admin/channels?tenant=${tenant.id}`);
    const row = rowOf(page, "websocket channel");
    await row.getByRole("cell", { name: "Active" }).waitFor();
    expect(await row.getByRole("cell", { name: "Healthy", exact: true }).count()).toBe(1);
    await row.getByRole("button", { name: "Disable" }).click();
    await row.getByRole("cell", { name: "Disabled" }).waitFor();
    expect((await storedChannels(tenant.key))[0]?.status).toBe("inactive");
    await row.getByRole("button", { name: "Enable" }).click();
    await row.getByRole("cell", { name: "Active" }).waitFor();
    expect((await storedChannels(tenant.key))[0]?.status).toBe("active");

    page.once("dialog", (dialog) => void dialog.accept());
    await row.getByRole("button", { name: "Rotate secret" }).click();
    await page.getByRole("status").getByText("New secret for “websocket channel”.").waitFor();
    const secret = (await page.locator("[data-secret=channel-secret]").textContent()) ?? "";
    expect(secret).not.toBe(channel.secret);
    expect((await mint(secret)).status).toBe(201);
    expect((await mint(channel.secret)).status).toBe(401);
    await page.setViewportSize({ width: 420, height: 800 });
    await screenshot(page, "console-channels-narrow");
    await page.close();
  });
});

describe("the conversations page", () => {
  it("lists conversations newest activity first, pages one by watermark, and follows it live across a reconnect", async () => {
    const tenant = await f.tenant("Inspect Co");
    await f.tenant("Other Co");
    const channel = await f.channel(tenant.key, "websocket");
    const busy = await f.conversation(tenant.key, channel.id, ["alice", "bob"]);
    for (let i = 1; i <= 30; i++) expect((await f.message(tenant.key, busy.id, `message ${i}`)).status).toBe(201);
    const quiet = await f.conversation(tenant.key, channel.id, ["carol"]);
    await f.message(tenant.key, quiet.id, "the latest word");

    const page = await openAsOperator("/admin/tenants");
    // The page's sockets to the edge pass through here (routes apply to pages loaded after them),
    // so the test can cut one and hold the next.
    const sockets: { page: WebSocketRoute; edge: WebSocketRoute }[] = [];
    let release = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    await page.routeWebSocket(/\/ws(\?|$)/, async (ws) => {
      if (sockets.length > 0) await released;
      sockets.push({ page: ws, edge: ws.connectToServer() });
    });
    await page.getByRole("navigation").getByRole("link", { name: "Conversations" }).click();
    await page.getByLabel("Tenant").selectOption({ label: "Inspect Co" });
    await expect.poll(() => new URL(page.url()).searchParams.get("tenant")).toBe(tenant.id);
    const rows = page.locator("tr[data-conversation]");
    await expect
      .poll(() => rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-conversation"))))
      .toEqual([quiet.id, busy.id]);
    const busyRow = page.locator(`tr[data-conversation="${busy.id}"]`);
    for (const cell of ["websocket channel", "alice, bob", "Active", "30"]) {
      await busyRow.getByRole("cell", { name: cell, exact: true }).waitFor();
    }
    await busyRow.getByText("Agent (agent-1): message 30").waitFor();
    await screenshot(page, "console-conversations");

    await busyRow.getByRole("button", { name: "Inspect" }).click();
    const inspector = page.getByRole("region", { name: "Activity inspector" });
    await inspector.getByText("Stream: Live").waitFor();
    const shownSeqs = () =>
      inspector.locator("tr[data-seq]").evaluateAll((trs) => trs.map((tr) => Number(tr.getAttribute("data-seq"))));
    const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
    await expect.poll(shownSeqs).toEqual(range(21, 30));
    await inspector.getByText("Showing seq 21 to 30 of 30.").waitFor();
    const newer = inspector.getByRole("button", { name: "Newer" });
    const older = inspector.getByRole("button", { name: "Older" });
    expect(await newer.isDisabled()).toBe(true);
    await older.click();
    await expect.poll(shownSeqs).toEqual(range(11, 20));
    await older.click();
    await expect.poll(shownSeqs).toEqual(range(1, 10));
    await inspector.getByRole("cell", { name: "message 1", exact: true }).waitFor();
    expect(await older.isDisabled()).toBe(true);
    await newer.click();
    await expect.poll(shownSeqs).toEqual(range(11, 20));
    await inspector.getByText("10 newer not shown: press Newer or Newest.").waitFor();
    await screenshot(page, "console-conversation-paged");
    await newer.click();
    await expect.poll(shownSeqs).toEqual(range(21, 30));
    expect(await newer.isDisabled()).toBe(true);

    expect((await f.message(tenant.key, busy.id, "posted while watching")).status).toBe(201);
    await expect.poll(shownSeqs).toEqual(range(21, 31));
    const fresh = inspector.locator('tr[data-seq="31"]');
    await fresh.getByRole("cell", { name: "posted while watching", exact: true }).waitFor();
    await fresh.getByText("(new)").waitFor();
    await inspector.getByText("Showing seq 21 to 31 of 31.").waitFor();
    await screenshot(page, "console-conversation-live");

    // The edge goes away: the page says so, and resumes from its last seq when it is back.
    const [first] = sockets;
    await first?.edge.close();
    await first?.page.close({ code: 1001, reason: "server going away" });
    await inspector.getByText("Stream: Reconnecting…").waitFor();
    await screenshot(page, "console-conversation-reconnecting");
    expect((await f.message(tenant.key, busy.id, "posted while away")).status).toBe(201);
    release();
    await inspector.getByText("Stream: Live").waitFor();
    await expect.poll(shownSeqs).toEqual(range(21, 32));
    await inspector.locator('tr[data-seq="32"]').getByRole("cell", { name: "posted while away" }).waitFor();
    await page.setViewportSize({ width: 420, height: 800 });
    await screenshot(page, "console-conversation-narrow");
    await page.close();
  });
});
