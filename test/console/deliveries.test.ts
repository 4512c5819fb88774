import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, fixtures, startTestApp, type TestApp } from "../helpers/app.js";
import { launchChromium, screenshot, signIn } from "../helpers/browser.js";
import { startHttpSink } from "../helpers/http-sink.js";
import { freePort } from "../helpers/process.js";

let t: TestApp;
let browser: BrowserContext;
// The integrator's webhook receiver: failing until the test mends it.
let healthy = false;
const sink = await startHttpSink(() => ({ status: healthy ? 200 : 500, body: healthy ? {} : { error: "down" } }));
let tenant: { id: string; key: string };
let conversationId: string;

beforeAll(async () => {
  t = await startTestApp({
    PORT: String(await freePort()),
    WEBHOOK_ALLOW_PRIVATE: "true",
    DELIVERY_BACKOFF_BASE_MS: "20",
    DELIVERY_MAX_ATTEMPTS: "2",
  });
  const f = fixtures(t.baseUrl);
  tenant = await f.tenant("Initech");
  const channel = await f.channel(tenant.key, "webhook", { url: `${sink.url}/hook` });
  conversationId = (await f.conversation(tenant.key, channel.id)).id;
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
  await t?.stop();
  await sink.close();
});

const post = (text: string) => fixtures(t.baseUrl).message(tenant.key, conversationId, text);
const failedCount = async () =>
  ((await call(t.baseUrl, "GET", "/v1/deliveries?status=failed", { key: tenant.key })).body.deliveries as unknown[])
    .length;
const needsAction = (page: Page) => page.getByRole("region", { name: "Needs action" });

describe("the Deliveries page", () => {
  it("shows a failed delivery first, its attempts, and delivers it after Retry, counters moving live", async () => {
    await post("to a failing webhook");
    await expect.poll(failedCount, { timeout: 20_000 }).toBe(1);
    const page = await browser.newPage();
    await signIn(page, t.baseUrl);
    await page.goto(`${t.baseUrl}/admin/deliveries`);
    await expect.poll(() => needsAction(page).locator("[data-count=failed]").textContent()).toBe("1");
    await page.getByLabel("Tenant").selectOption({ label: "Initech" });
    await page.getByLabel("Status").selectOption("failed");
    // Filters live in the URL: a reload (or a link) shows the same view.
    await expect.poll(() => new URL(page.url()).searchParams.get("status")).toBe("failed");
    expect(new URL(page.url()).searchParams.get("tenant")).toBe(tenant.id);
    await page.reload();
    expect(await page.getByLabel("Status").inputValue()).toBe("failed");
    const row = page.locator("tr[data-delivery]").first();
    await row.getByRole("cell", { name: "failed", exact: true }).waitFor();
    await row.getByRole("button", { name: "Attempts" }).click();
    await page.getByText("(HTTP 500)").first().waitFor();
    expect(await page.getByText("try #2: failed (HTTP 500)").count()).toBe(1);
    await screenshot(page, "console-deliveries-failed");

    healthy = true;
    await row.getByRole("button", { name: "Retry" }).click();
    await page.getByText("is scheduled for another try now.").waitFor();
    // The counters are pushed by the server: no reload, no click.
    const counts = page.getByRole("region", { name: "Counts" });
    await expect.poll(() => counts.locator("[data-count=delivered]").textContent(), { timeout: 15_000 }).toBe("1");
    await expect.poll(() => needsAction(page).locator("[data-count=failed]").textContent()).toBe("0");
    expect(await failedCount()).toBe(0);
    // A hidden tab stops the push (nobody looks, nothing is computed) and resumes it when shown again.
    // Run in the page (a string: this file has no DOM types).
    const setVisibility = (state: string) =>
      page.evaluate(`Object.defineProperty(document, "visibilityState", { value: "${state}", configurable: true });
        document.dispatchEvent(new Event("visibilitychange"));`);
    await setVisibility("hidden");
    await page.getByText("Paused while the tab is hidden.").waitFor();
    await setVisibility("visible");
    await page.getByText("Live: counts update by themselves.").waitFor();
    await page.close();
  });

  it("retries a filtered set in bulk, showing how many before it runs", async () => {
    healthy = false;
    for (const text of ["one", "two", "three"]) await post(text);
    await expect.poll(failedCount, { timeout: 30_000 }).toBe(3);
    const page = await browser.newPage();
    await signIn(page, t.baseUrl);
    await page.goto(`${t.baseUrl}/admin/deliveries?tenant=${tenant.id}&status=failed`);
    await page.locator("tr[data-delivery]").nth(2).waitFor();
    await page.getByRole("button", { name: "Retry all matching…" }).click();
    await page.getByText("This will retry 3 failed deliveries.").waitFor();
    // Nothing ran yet: the count came from a dry run.
    expect(await failedCount()).toBe(3);
    await screenshot(page, "console-deliveries-bulk");
    healthy = true;
    await page.getByRole("button", { name: "Retry 3 deliveries" }).click();
    await page.getByText("3 deliveries scheduled for another try.").waitFor();
    const delivered = async () =>
      (
        (await call(t.baseUrl, "GET", "/v1/deliveries?status=delivered", { key: tenant.key })).body
          .deliveries as unknown[]
      ).length;
    await expect.poll(delivered, { timeout: 20_000 }).toBe(4);
    expect(await failedCount()).toBe(0);
    await page.close();
  });
});
