import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sdkScriptRoute } from "./sdk-route.js";

const dir = mkdtempSync(join(tmpdir(), "converger-sdk-route-"));
const file = join(dir, "converger.js");
let server: Server;
let url: string;

beforeAll(async () => {
  const route = sdkScriptRoute(pathToFileURL(file));
  server = createServer((req, res) => void route.handle({ req, res, params: {}, requestId: "r", clientIp: "" }));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/sdk/converger.js`;
});
afterAll(() => {
  server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("GET /sdk/converger.js", () => {
  it("answers 404 saying how to build when the browser build is missing", async () => {
    const res = await fetch(url);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { message: string }).message).toMatch(/npm run build/);
  });

  it("serves the module with an ETag, revalidates with 304 and picks up a rebuild", async () => {
    writeFileSync(file, "export const build = 1;\n");
    const first = await fetch(url);
    expect(first.status).toBe(200);
    expect(first.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(first.headers.get("cache-control")).toBe("no-cache");
    expect(await first.text()).toBe("export const build = 1;\n");
    const etag = first.headers.get("etag") ?? "";
    expect(etag).toMatch(/^"[\w-]+"$/);
    const unchanged = await fetch(url, { headers: { "if-none-match": etag } });
    expect(unchanged.status).toBe(304);

    writeFileSync(file, "export const build = 22;\n");
    const rebuilt = await fetch(url, { headers: { "if-none-match": etag } });
    expect(rebuilt.status).toBe(200);
    expect(rebuilt.headers.get("etag")).not.toBe(etag);
    expect(await rebuilt.text()).toBe("export const build = 22;\n");
  });
});
