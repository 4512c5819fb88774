import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { ADMIN_TOKEN } from "./app.js";

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

/** Debian's Chromium in a fresh profile. */
export function launchChromium(): Promise<BrowserContext> {
  return chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), "converger-chromium-")), {
    executablePath: "/usr/bin/chromium",
    args: CHROMIUM_ARGS,
    headless: true,
    viewport: { width: 1200, height: 800 },
  });
}

const shots = process.env.SCREENSHOT_DIR ?? mkdtempSync(join(tmpdir(), "converger-screenshots-"));

/** A full-page screenshot, kept for a person to look at (SCREENSHOT_DIR, else a temporary folder). */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(shots, { recursive: true });
  const path = join(shots, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  console.info(`screenshot: ${path}`);
  return path;
}

/** Signs in on the console's sign-in page, as an operator would (a live session goes straight on). */
export async function signIn(page: Page, baseUrl: string, token = ADMIN_TOKEN): Promise<void> {
  await page.goto(`${baseUrl}/admin/`);
  if (new URL(page.url()).pathname !== "/admin/") return;
  await page.getByLabel("Admin token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
}
