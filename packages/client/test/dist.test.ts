import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fixtures, startTestApp, type TestApp } from "../../../test/helpers/app.js";

const packageDir = fileURLToPath(new URL("..", import.meta.url));
const dist = join(packageDir, "dist");
const tsc = fileURLToPath(import.meta.resolve("typescript/bin/tsc"));

// An integrator's project: strict, browser typings, the package reached by its name and `exports`.
const CONSUMER = `
import { type Activity, ActivityType, ChannelType, Code, ConnectError, Converger, type ClientContext } from "@converger/client";

const cv = new Converger({ baseUrl: "https://api.example.com", getToken: async () => "jwt" });
export async function firstMember(id: string): Promise<string | undefined> {
  try {
    const conversation = await cv.conversations.getConversation({ id });
    const seq: bigint | undefined = conversation.lastActivity?.seq;
    void seq;
    return conversation.members[0];
  } catch (error) {
    if (ConnectError.from(error).code === Code.NotFound) return undefined;
    throw error;
  }
}
export const services = [cv.auth, cv.channels, cv.delivery, cv.events, cv.tenants, cv.uploads];
export type Shared = ClientContext["transport"];
export const webhook = cv.channels.createChannel({ name: "hook", type: ChannelType.WEBHOOK, config: { url: "https://x.example" } });
export const isMessage = (a: Activity) => a.type === ActivityType.MESSAGE;
// The console's session: a browser credential with nothing to pass.
export const console = new Converger({ baseUrl: "https://api.example.com", session: true });
// @ts-expect-error an RPC that does not exist
cv.conversations.deleteEverything();
// @ts-expect-error a field of the wrong type
cv.conversations.getConversation({ id: 42 });
// @ts-expect-error two credentials at once
new Converger({ baseUrl: "https://api.example.com", apiKey: "cvg_x", token: "jwt" });
`;

let t: TestApp;

beforeAll(async () => {
  if (!existsSync(join(dist, "index.js"))) throw new Error("packages/client/dist is missing: run `npm run build`");
  t = await startTestApp();
});
afterAll(() => t?.stop());

describe("the built package", () => {
  it("type-checks an integrator's code against its declarations, found through exports", async () => {
    const project = mkdtempSync(join(tmpdir(), "converger-consumer-"));
    mkdirSync(join(project, "node_modules", "@converger"), { recursive: true });
    symlinkSync(packageDir, join(project, "node_modules", "@converger", "client"));
    writeFileSync(join(project, "package.json"), JSON.stringify({ type: "module" }));
    writeFileSync(join(project, "consumer.ts"), CONSUMER);
    const compilerOptions = {
      strict: true,
      exactOptionalPropertyTypes: true,
      target: "ES2022",
      module: "NodeNext",
      moduleResolution: "NodeNext",
      lib: ["ES2022", "DOM"],
      types: [],
      noEmit: true,
    };
    writeFileSync(join(project, "tsconfig.json"), JSON.stringify({ compilerOptions, files: ["consumer.ts"] }));
    const result = await promisify(execFile)(process.execPath, [tsc, "-p", project]).catch((e) => e);
    expect(`${result.stdout}${result.stderr}`).toBe("");
  }, 120_000);

  it("runs in Node from dist/index.js, importing only the package's declared dependencies", async () => {
    const { dependencies } = JSON.parse(readFileSync(join(packageDir, "package.json"), "utf8"));
    const source = readFileSync(join(dist, "index.js"), "utf8");
    const imported = new Set([...source.matchAll(/from "([^"]+)"/g)].map((m) => (m[1] ?? "").split("/", 2).join("/")));
    expect([...imported].filter((name) => !(name in dependencies))).toEqual([]);

    const { Converger, Code, ConnectError } = await import(join(dist, "index.js"));
    const key = (await fixtures(t.baseUrl).tenant("Dist Co")).key;
    const cv = new Converger({ baseUrl: t.baseUrl, apiKey: key });
    expect((await cv.conversations.listConversations({})).conversations).toEqual([]);
    const error = await cv.conversations.getConversation({ id: crypto.randomUUID() }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectError);
    expect(error.code).toBe(Code.NotFound);
  });

  it("gives browsers one self-contained module with no Node-only import", () => {
    const browser = readFileSync(join(dist, "converger.js"), "utf8");
    expect(browser).not.toMatch(/\bfrom\s*"/);
    expect(browser).not.toMatch(/\bimport\s*\(/);
    expect(browser).not.toMatch(/node:/);
    expect(browser).toMatch(/export\s*\{/);
  });
});
