import type { BrowserContext } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_TOKEN, call, startTestApp, type TestApp } from "../helpers/app.js";
import { launchChromium, screenshot, signIn } from "../helpers/browser.js";
import { freePort } from "../helpers/process.js";

let t: TestApp;
let outside: TestApp;
let browser: BrowserContext;

beforeAll(async () => {
  // A known port: PUBLIC_URL (the console's origin) is then the pages' own.
  t = await startTestApp({ PORT: String(await freePort()) });
  // The same product for a caller outside the allowlist (the tests connect from 127.0.0.1).
  outside = await startTestApp({ ADMIN_ALLOWED_IPS: "10.9.9.9/32" });
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
  await Promise.all([t?.stop(), outside?.stop()]);
});

const sessionCookie = async () => (await browser.cookies(t.baseUrl)).find((c) => c.name === "cvg_admin_session");

describe("the console's sign-in", () => {
  it("leads from / to the sign-in page, refuses a wrong token and signs in with the right one", async () => {
    const page = await browser.newPage();
    await page.goto(`${t.baseUrl}/`);
    expect(new URL(page.url()).pathname).toBe("/admin/");
    await signIn(page, t.baseUrl, "adm_not-the-token");
    await expect.poll(() => page.getByRole("alert").textContent()).toBe("That admin token is not valid.");
    expect(await sessionCookie()).toBeUndefined();
    await screenshot(page, "console-sign-in-refused");

    await signIn(page, t.baseUrl);
    await page.getByRole("heading", { name: "Tenants", level: 1 }).waitFor();
    const cookie = await sessionCookie();
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: "Strict", path: "/" });
    for (const link of ["Tenants", "Channels", "Conversations", "Deliveries", "Live feed", "Audit log"]) {
      expect(await page.getByRole("navigation").getByRole("link", { name: link }).count()).toBe(1);
    }
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("Admin token").waitFor();
    // The old cookie no longer opens anything: the session ended on the server, not just in the browser.
    const after = await fetch(`${t.baseUrl}/admin/tenants`, {
      headers: { cookie: `cvg_admin_session=${cookie?.value}` },
      redirect: "manual",
    });
    expect(after.status).toBe(303);
    expect(after.headers.get("location")).toBe("/admin/");
    await page.close();
  });
});

describe("console sessions", () => {
  const signInByForm = async (token: string) => {
    const res = await fetch(`${t.baseUrl}/admin/sign-in`, {
      method: "POST",
      headers: { origin: t.baseUrl, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token }),
      redirect: "manual",
    });
    return { res, cookie: (res.headers.get("set-cookie") ?? "").split(";")[0] as string };
  };
  const open = (cookie: string) =>
    fetch(`${t.baseUrl}/admin/tenants`, { headers: { cookie }, redirect: "manual" }).then((r) => r.status);

  it("expires: a session past its expiry opens nothing, and a sign-in from a foreign page is refused", async () => {
    const { res, cookie } = await signInByForm(ADMIN_TOKEN);
    expect(res.status).toBe(303);
    expect(res.headers.get("set-cookie")).toMatch(/HttpOnly; SameSite=Strict; Max-Age=28800$/);
    // Aged on the server before its first use (uses are cached for a few seconds).
    const secret = cookie.slice(cookie.indexOf("=") + 1);
    await t.db.query(
      "UPDATE auth.admin_sessions SET expires_at = now() - interval '1 second' WHERE secret_hash = sha256($1::bytea)",
      [Buffer.from(secret)],
    );
    expect(await open(cookie)).toBe(303);
    const foreign = await fetch(`${t.baseUrl}/admin/sign-in`, {
      method: "POST",
      headers: { origin: "https://evil.example", "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token: ADMIN_TOKEN }),
      redirect: "manual",
    });
    expect(foreign.status).toBe(403);
    expect(foreign.headers.get("set-cookie")).toBeNull();
    const fresh = await signInByForm(ADMIN_TOKEN);
    expect(await open(fresh.cookie)).toBe(200);
  });
});

describe("tenants", () => {
  it("creates two tenants showing each API key once, disables, enables, rotates and sets a rate limit", async () => {
    const page = await browser.newPage();
    await signIn(page, t.baseUrl);
    for (const name of ["Acme Support", "Globex Help"]) {
      await page.getByLabel("Name").fill(name);
      await page.getByRole("button", { name: "Create tenant" }).click();
      await page.getByRole("status").getByText(`Tenant “${name}” created.`).waitFor();
      const key = (await page.locator("[data-secret=api-key]").textContent()) ?? "";
      expect(key).toMatch(/^cvg_/);
      // The key works: the tenant's own API answers with it.
      expect((await call(t.baseUrl, "GET", "/v1/conversations", { key })).status).toBe(200);
      await page.getByRole("cell", { name, exact: true }).waitFor();
    }
    const acme = page.locator("tr", { has: page.getByRole("cell", { name: "Acme Support", exact: true }) });
    await acme.getByRole("button", { name: "Disable" }).click();
    await acme.getByRole("cell", { name: "Disabled" }).waitFor();
    await acme.getByRole("button", { name: "Enable" }).click();
    await acme.getByRole("cell", { name: "Active" }).waitFor();
    await acme.getByLabel("Rate limit per minute for Acme Support").fill("1200");
    await acme.getByRole("button", { name: "Save limit" }).click();
    await expect.poll(() => acme.getByLabel("Rate limit per minute for Acme Support").inputValue()).toBe("1200");
    page.once("dialog", (dialog) => void dialog.accept());
    await acme.getByRole("button", { name: "Rotate key" }).click();
    await page.getByRole("status").getByText("New API key for “Acme Support”.").waitFor();
    await screenshot(page, "console-tenants");

    const listed = await call(t.baseUrl, "GET", "/admin/v1/tenants", { token: ADMIN_TOKEN });
    const stored = (listed.body.tenants as { name: string; rate_limit_per_minute?: number; status: string }[]).find(
      (x) => x.name === "Acme Support",
    );
    expect(stored).toMatchObject({ status: "active", rate_limit_per_minute: 1200 });
    await page.close();
  });

  it("writes every operator action to the audit log, with the session and the address", async () => {
    const page = await browser.newPage();
    await signIn(page, t.baseUrl);
    await page.getByRole("navigation").getByRole("link", { name: "Audit log" }).click();
    await page.getByRole("heading", { name: "Audit log", level: 1 }).waitFor();
    await page.getByRole("cell", { name: "converger.v1.TenantsService/CreateTenant" }).first().waitFor();
    const audit = await call(t.baseUrl, "GET", "/admin/v1/audit-events?operator_actions_only=true&limit=100", {
      token: ADMIN_TOKEN,
    });
    const actions = (
      audit.body.events as { action: string; session_id?: string; source_ip: string; outcome: string }[]
    ).filter((e) => e.action === "converger.v1.TenantsService/CreateTenant");
    expect(actions.length).toBeGreaterThanOrEqual(2);
    expect(actions[0]).toMatchObject({ source_ip: "127.0.0.1", outcome: "ok" });
    expect(actions[0]?.session_id).toMatch(/^[0-9a-f-]{36}$/);
    await screenshot(page, "console-audit");
    await page.close();
  });
});

describe("the console's walls", () => {
  it("answers 403 on every /admin path outside ADMIN_ALLOWED_IPS, before anything else", async () => {
    for (const path of [
      "/admin",
      "/admin/",
      "/admin/tenants",
      "/admin/assets/console.js",
      "/admin/v1/tenants",
      "/admin/nope",
      "//admin/tenants",
      "/ADMIN/tenants",
      "/%61dmin/tenants",
    ]) {
      for (const method of ["GET", "POST"]) {
        const res = await fetch(`${outside.baseUrl}${path}`, {
          method,
          headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        });
        expect([path, method, res.status]).toEqual([path, method, 403]);
      }
    }
    // Outside the allowlist, / is not the console's.
    expect((await fetch(`${outside.baseUrl}/`, { redirect: "manual" })).status).toBe(404);
  });

  it("sends the CSP, and refuses a cookie-authenticated change from another origin", async () => {
    const page = await browser.newPage();
    const response = await page.goto(`${t.baseUrl}/admin/`);
    const csp = response?.headers()["content-security-policy"] ?? "";
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval/);
    await signIn(page, t.baseUrl);
    await page.getByRole("heading", { name: "Tenants", level: 1 }).waitFor();
    const cookie = `cvg_admin_session=${(await sessionCookie())?.value}`;
    const create = (origin: string) =>
      fetch(`${t.baseUrl}/converger.v1.TenantsService/CreateTenant`, {
        method: "POST",
        headers: { cookie, origin, "content-type": "application/json" },
        body: JSON.stringify({ name: "CSRF Co" }),
      });
    expect((await create("https://evil.example")).status).toBe(403);
    expect((await create(t.baseUrl)).status).toBe(200);
    const rest = await fetch(`${t.baseUrl}/admin/v1/tenants`, {
      method: "POST",
      headers: { cookie, origin: "https://evil.example", "content-type": "application/json" },
      body: JSON.stringify({ name: "CSRF Co 2" }),
    });
    expect(rest.status).toBe(403);
    const signOut = await fetch(`${t.baseUrl}/admin/sign-out`, {
      method: "POST",
      headers: { cookie, origin: "https://evil.example" },
      redirect: "manual",
    });
    expect(signOut.status).toBe(403);
    // Reads need no Origin: a page's GET of its data works with the cookie alone.
    const read = await fetch(`${t.baseUrl}/admin/v1/tenants`, { headers: { cookie } });
    expect(read.status).toBe(200);
    await page.close();
  });
});
