import type { BrowserContext, Page, WebSocketRoute } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_TOKEN, call, fixtures, startTestApp, type TestApp } from "../helpers/app.js";
import { launchChromium, screenshot, signIn } from "../helpers/browser.js";
import { freePort } from "../helpers/process.js";

let t: TestApp;
let browser: BrowserContext;
let acme: { id: string; key: string };
let globex: { id: string; key: string };

beforeAll(async () => {
  // A known port: PUBLIC_URL (the origin the edge accepts) is then the console's own.
  t = await startTestApp({ PORT: String(await freePort()) });
  acme = await fixtures(t.baseUrl).tenant("Acme Live");
  globex = await fixtures(t.baseUrl).tenant("Globex Live");
  browser = await launchChromium();
  const page = await browser.newPage();
  await signIn(page, t.baseUrl);
  await page.getByRole("heading", { name: "Tenants", level: 1 }).waitFor();
  await page.close();
});
afterAll(async () => {
  await browser?.close();
  await t?.stop();
});

let serial = 0;
const unique = (label: string) => `${label} #${++serial}`;

/** A console window on the live feed of one tenant, as the operator opens it from the nav. */
async function openFeed(tenantName: string, before?: (page: Page) => Promise<void>): Promise<Page> {
  const page = await browser.newPage();
  await before?.(page);
  await page.goto(`${t.baseUrl}/admin/tenants`);
  await page.getByRole("navigation").getByRole("link", { name: "Live feed" }).click();
  await page.getByRole("heading", { name: "Live feed", level: 1 }).waitFor();
  await page.getByLabel("Tenant").selectOption({ label: tenantName });
  await connected(page);
  return page;
}

const statusOf = (page: Page) => page.getByRole("status").textContent();
const connected = (page: Page) => expect.poll(() => statusOf(page), { timeout: 10_000 }).toBe("Connected");
const events = (page: Page) => page.getByRole("list", { name: "Events, newest first" }).getByRole("listitem");
const eventNamed = (page: Page, text: string) => events(page).filter({ hasText: text });

/** Posts from the page's form; resolves with the milliseconds from the click to the event showing in the feed. */
async function postInPage(page: Page, text: string): Promise<number> {
  await page.getByLabel("Message").fill(text);
  const clicked = Date.now();
  await page.getByRole("button", { name: "Post event" }).click();
  await eventNamed(page, text).waitFor();
  return Date.now() - clicked;
}

const postRest = (tenant: { id: string; key: string }, message: string) =>
  call(t.baseUrl, "POST", "/v1/events", { key: tenant.key, headers: { "X-Tenant-ID": tenant.id }, body: { message } });

async function storedMessages(tenant: { key: string }): Promise<string[]> {
  const list = await call(t.baseUrl, "GET", "/v1/events?limit=100", { key: tenant.key });
  return (list.body.events as { message: string }[]).map((e) => e.message);
}

/** What the "new" mark says in words (console.css puts it after the item). */
const markOf = (page: Page, text: string) =>
  eventNamed(page, text).evaluate((li) =>
    li.classList.contains("new") ? (li.ownerDocument.defaultView?.getComputedStyle(li, "::after").content ?? "") : "",
  );

describe("the live feed", () => {
  it("shows two tenants' events live, each in its own window only, within a second", async () => {
    const a = await openFeed("Acme Live");
    const b = await openFeed("Globex Live");

    const fromA = unique("deploy started at Acme");
    const latencyA = await postInPage(a, fromA);
    console.info(`live feed: click to shown in window A took ${latencyA} ms`);
    expect(latencyA).toBeLessThan(1000);
    expect(await markOf(a, fromA)).toBe('" (new)"');
    // B's own event, posted after A's, is the sentinel: had A's leaked to B, it would be there by now.
    const fromB = unique("deploy started at Globex");
    const latencyB = await postInPage(b, fromB);
    console.info(`live feed: click to shown in window B took ${latencyB} ms`);
    expect(latencyB).toBeLessThan(1000);
    const sentinelA = unique("Acme sentinel");
    await postInPage(a, sentinelA);
    expect(await eventNamed(b, fromA).count()).toBe(0);
    expect(await eventNamed(a, fromB).count()).toBe(0);

    // An integrator's server posts over REST with its API key: it shows live in its tenant's window.
    const integrator = unique("integrator says hello to Globex");
    const posted = Date.now();
    expect((await postRest(globex, integrator)).status).toBe(201);
    await eventNamed(b, integrator).waitFor();
    const latencyRest = Date.now() - posted;
    console.info(`live feed: REST post to shown in window B took ${latencyRest} ms`);
    expect(latencyRest).toBeLessThan(1000);
    const restSentinel = unique("integrator sentinel for Acme");
    expect((await postRest(acme, restSentinel)).status).toBe(201);
    await eventNamed(a, restSentinel).waitFor();
    expect(await eventNamed(a, integrator).count()).toBe(0);
    expect(await eventNamed(b, restSentinel).count()).toBe(0);

    expect(await events(b).allTextContents()).toEqual([
      expect.stringContaining(integrator),
      expect.stringContaining(fromB),
    ]);
    await screenshot(a, "console-live-window-a");
    await screenshot(b, "console-live-window-b");

    // A reload lists what is stored, newest first, with nothing marked new.
    await b.reload();
    await connected(b);
    await eventNamed(b, integrator).waitFor();
    expect(await events(b).allTextContents()).toEqual([
      expect.stringContaining(integrator),
      expect.stringContaining(fromB),
    ]);
    expect(await markOf(b, integrator)).toBe("");
    await Promise.all([a.close(), b.close()]);
  });

  it("refuses an empty or 501-character message with a visible error and stores nothing; 500 go through", async () => {
    const page = await openFeed("Acme Live");
    const alert = page.getByRole("alert").filter({ hasText: "Message must be" });
    await page.getByLabel("Message").fill("");
    await page.getByRole("button", { name: "Post event" }).click();
    await expect.poll(() => alert.textContent()).toBe("Message must be 1–500 characters (it has 0).");
    const tooLong = `${"x".repeat(490)}${unique("long").padEnd(11, "y")}`;
    expect([...tooLong]).toHaveLength(501);
    await page.getByLabel("Message").fill(tooLong);
    // Nothing was cut: the field holds all 501 characters, and says so.
    expect(await page.getByLabel("Message").inputValue()).toBe(tooLong);
    await page.getByRole("button", { name: "Post event" }).click();
    await expect.poll(() => alert.textContent()).toBe("Message must be 1–500 characters (it has 501).");
    await page.setViewportSize({ width: 390, height: 800 });
    await screenshot(page, "console-live-refused-narrow");
    await page.setViewportSize({ width: 1200, height: 800 });

    // The server refuses it too, for callers that skip the page's check.
    const direct = await postRest(acme, tooLong);
    expect(direct.status).toBe(400);
    expect(direct.body.message).toContain("message");
    // 500 characters (not UTF-16 units: "é" is one) are the limit, and the error goes away.
    const longest = `${unique("limit")} `.padEnd(500, "é");
    expect(await postInPage(page, longest)).toBeLessThan(1000);
    expect(await alert.isVisible()).toBe(false);
    const stored = await storedMessages(acme);
    expect(stored).toContain(longest);
    expect(stored).not.toContain(tooLong);
    await page.close();
  });

  it("says when the server refuses to store an event, e.g. for a disabled tenant", async () => {
    const initech = await fixtures(t.baseUrl).tenant("Initech Live");
    const page = await openFeed("Initech Live");
    const disabled = await call(t.baseUrl, "PATCH", `/admin/v1/tenants/${initech.id}`, {
      token: ADMIN_TOKEN,
      body: { status: "inactive" },
    });
    expect(disabled.status).toBe(200);
    const refused = unique("posted while disabled");
    await page.getByLabel("Message").fill(refused);
    await page.getByRole("button", { name: "Post event" }).click();
    await expect.poll(() => page.getByRole("alert").textContent()).toBe("Not posted: tenant is inactive");
    await screenshot(page, "console-live-server-refusal");
    // Enabled again (a disabled tenant reads nothing), the tenant has nothing of it.
    const enabled = await call(t.baseUrl, "PATCH", `/admin/v1/tenants/${initech.id}`, {
      token: ADMIN_TOKEN,
      body: { status: "active" },
    });
    expect(enabled.status).toBe(200);
    expect(await storedMessages(initech)).toEqual([]);
    await page.close();
  });

  it("closes the old stream when the tenant changes, and follows the new one only", async () => {
    const page = await browser.newPage();
    const sockets: { url: string; closed: Promise<void> }[] = [];
    page.on("websocket", (ws) =>
      sockets.push({ url: ws.url(), closed: new Promise((resolve) => ws.once("close", () => resolve())) }),
    );
    await page.goto(`${t.baseUrl}/admin/live?tenant=${acme.id}`);
    await connected(page);
    expect(sockets.map((s) => new URL(s.url).searchParams.get("tenant"))).toEqual([acme.id]);
    await page.getByLabel("Tenant").selectOption({ label: "Globex Live" });
    await sockets[0]?.closed;
    await connected(page);
    expect(new URL(page.url()).searchParams.get("tenant")).toBe(globex.id);
    const forAcme = unique("for Acme after the switch");
    expect((await postRest(acme, forAcme)).status).toBe(201);
    const forGlobex = unique("for Globex after the switch");
    expect((await postRest(globex, forGlobex)).status).toBe(201);
    await eventNamed(page, forGlobex).waitFor();
    expect(await eventNamed(page, forAcme).count()).toBe(0);
    await page.close();
  });

  it("says Reconnecting… while the edge is unreachable and shows what was posted meanwhile once back", async () => {
    let unreachable = false;
    const routes: WebSocketRoute[] = [];
    const page = await openFeed("Acme Live", (p) =>
      p.routeWebSocket(/\/ws\?/, (ws) => {
        // While "unreachable", every attempt is dropped before the edge could say connection_established.
        if (unreachable) {
          void ws.close({ code: 1012, reason: "test: edge unreachable" });
          return;
        }
        routes.push(ws);
        ws.connectToServer();
      }),
    );
    unreachable = true;
    for (const route of routes) await route.close({ code: 1012, reason: "test: connection lost" });
    await expect.poll(() => statusOf(page)).toBe("Reconnecting…");
    const meanwhile = unique("posted while the window was away");
    expect((await postRest(acme, meanwhile)).status).toBe(201);
    await screenshot(page, "console-live-reconnecting");
    unreachable = false;
    await connected(page);
    await eventNamed(page, meanwhile).waitFor();
    expect(await markOf(page, meanwhile)).toBe('" (new)"');
    const after = unique("live again");
    expect(await postInPage(page, after)).toBeLessThan(1000);
    await page.close();
  });

  it("writes each tenant token the page mints to the audit log, naming the tenant", async () => {
    const audit = await call(t.baseUrl, "GET", "/admin/v1/audit-events?operator_actions_only=true&limit=100", {
      token: ADMIN_TOKEN,
    });
    expect(audit.status).toBe(200);
    const mints = (audit.body.events as { action: string; target?: string; session_id?: string; outcome: string }[])
      .filter((e) => e.action === "converger.v1.AuthService/CreateTenantAccessToken")
      .map((e) => ({ target: e.target, outcome: e.outcome, bySession: /^[0-9a-f-]{36}$/.test(e.session_id ?? "") }));
    for (const tenant of [acme, globex]) {
      expect(mints).toContainEqual({ target: tenant.id, outcome: "ok", bySession: true });
    }
  });
});
