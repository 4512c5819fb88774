import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type pg from "pg";
import { expect } from "vitest";
import { loadConfig } from "../../services/common/config.js";
import { createLogger } from "../../services/common/obs/logger.js";
import { type App, startApp } from "../../services/host/app.js";
import { createTestDatabase, openInspector } from "./database.js";

export const ADMIN_TOKEN = "test-admin-token";

/** Limits out of the way of tests that are not about them; those set their own. */
export const UNLIMITED = {
  RATE_LIMIT_PER_MINUTE: "1000000",
  RATE_LIMIT_TENANT_PER_MINUTE: "1000000",
  RATE_LIMIT_IP_PER_MINUTE: "1000000",
  RATE_LIMIT_AUTH_FAILURES_PER_MINUTE: "1000000",
};

export interface TestApp {
  app: App;
  baseUrl: string;
  /** Direct access to the app's database (every service's schema), for checking what was (not) written. */
  db: pg.Pool;
  stop(): Promise<void>;
}

/** The whole product in this process on free ports, against a fresh database. */
export async function startTestApp(env: Record<string, string> = {}): Promise<TestApp> {
  // A test that brings its own database (a restart, a fixture) gets the inspector on that one.
  const databaseUrl = env.DATABASE_URL ?? (await createTestDatabase());
  const config = loadConfig({
    HOST: "127.0.0.1",
    PORT: "0",
    GRPC_PORT: "0",
    WS_PORT: "0",
    DATABASE_URL: databaseUrl,
    DATA_DIR: mkdtempSync(join(tmpdir(), "converger-app-")),
    ADMIN_TOKEN,
    LOG_LEVEL: "silent",
    ...UNLIMITED,
    ...env,
  });
  const app = await startApp(config, createLogger(process.env.TEST_LOG_LEVEL ?? "silent"));
  const db = openInspector(databaseUrl);
  return {
    app,
    baseUrl: `http://127.0.0.1:${app.ports.gateway}`,
    db,
    async stop() {
      await db.end();
      await app.stop();
    },
  };
}

export interface ApiResponse<T = Record<string, unknown>> {
  status: number;
  headers: Headers;
  body: T;
}

export interface CallOptions {
  key?: string | undefined;
  token?: string;
  body?: unknown;
  headers?: Record<string, string>;
}

/** One REST call; JSON in and out. */
// biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON bodies
export async function call<T = Record<string, any>>(
  baseUrl: string,
  method: string,
  path: string,
  options: CallOptions = {},
): Promise<ApiResponse<T>> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.key) headers["x-api-key"] = options.key;
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let body: string | undefined;
  if (options.body !== undefined) {
    body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
    headers["content-type"] ??= "application/json";
  }
  const res = await fetch(baseUrl + path, body === undefined ? { method, headers } : { method, headers, body });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : {};
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, headers: res.headers, body: parsed as T };
}

/** Shortcuts for the common fixtures of a test. */
export function fixtures(baseUrl: string) {
  return {
    async tenant(name = "Acme"): Promise<{ id: string; key: string }> {
      const res = await call(baseUrl, "POST", "/admin/v1/tenants", { token: ADMIN_TOKEN, body: { name } });
      if (res.status !== 201) throw new Error(`tenant: ${res.status} ${JSON.stringify(res.body)}`);
      return { id: res.body.id, key: res.body.api_key };
    },
    async channel(key: string, type = "websocket", config: Record<string, unknown> = {}) {
      const res = await call(baseUrl, "POST", "/v1/channels", { key, body: { name: `${type} channel`, type, config } });
      if (res.status !== 201) throw new Error(`channel: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body as { id: string; secret: string };
    },
    async conversation(key: string, channelId: string, members: string[] = []) {
      const res = await call(baseUrl, "POST", "/v1/conversations", { key, body: { channel_id: channelId, members } });
      if (res.status !== 201) throw new Error(`conversation: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body as { id: string };
    },
    /** A client token for `userId` in the conversation, minted with the tenant's API key. */
    async clientToken(key: string, conversationId: string, userId: string): Promise<string> {
      const res = await call(baseUrl, "POST", `/v1/conversations/${conversationId}/tokens`, {
        key,
        body: { user: { id: userId } },
      });
      if (res.status !== 201) throw new Error(`client token: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body.token as string;
    },
    async message(key: string, conversationId: string, text: string, headers: Record<string, string> = {}) {
      return call(baseUrl, "POST", `/v1/conversations/${conversationId}/activities`, {
        key,
        headers,
        body: { type: "message", text, from: { id: "agent-1", name: "Agent" } },
      });
    },
  };
}

// biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON bodies
type JsonBody = Record<string, any>;

/** Waits until an upload ends (COMPLETED or FAILED; fails the test after `timeoutMs`) and returns that status. */
export async function uploadOutcome(baseUrl: string, key: string, uploadId: string, timeoutMs = 10_000) {
  let body: JsonBody = {};
  await expect
    .poll(
      async () => {
        body = (await call<JsonBody>(baseUrl, "GET", `/v1/files/upload/${uploadId}/status`, { key })).body;
        return body.status;
      },
      { timeout: timeoutMs },
    )
    .toMatch(/^(COMPLETED|FAILED)$/);
  return body;
}
