import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfig } from "../services/common/config.js";
import { createLogger } from "../services/common/obs/logger.js";
import { startApp } from "../services/host/app.js";
import { ADMIN_TOKEN, call, fixtures, UNLIMITED } from "./helpers/app.js";

const dataDir = mkdtempSync(join(tmpdir(), "converger-at-rest-"));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

/** A credential-like value no other part of the run could produce by chance. */
const secret = (label: string) => `${label}-${randomBytes(12).toString("hex")}`;

function* filesUnder(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* filesUnder(path);
    else if (entry.isFile()) yield path;
  }
}

describe("credentials at rest", () => {
  it("leaves no credential of a run in the data directory (tables and WAL), after a checkpoint", async () => {
    // No DATABASE_URL: the embedded PostgreSQL keeps its whole cluster under DATA_DIR.
    const config = loadConfig({
      HOST: "127.0.0.1",
      PORT: "0",
      GRPC_PORT: "0",
      WS_PORT: "0",
      DATA_DIR: dataDir,
      ADMIN_TOKEN,
      WEBHOOK_ALLOW_PRIVATE: "true",
      ...UNLIMITED,
    });
    const app = await startApp(config, createLogger("silent"));
    const credentials: Record<string, string> = { admin_token: ADMIN_TOKEN };
    try {
      const base = `http://127.0.0.1:${app.ports.gateway}`;
      const f = fixtures(base);
      const { key } = await f.tenant();
      credentials.api_key = key;
      const configs: Record<string, Record<string, unknown>> = {
        webhook: { url: "http://127.0.0.1:9/hook", headers: { Authorization: secret("hdr") } },
        whatsapp_meta: {
          phone_number_id: "1",
          access_token: secret("wa-at"),
          verify_token: secret("wa-vt"),
          app_secret: secret("wa-as"),
        },
        whatsapp_infobip: { base_url: "http://127.0.0.1:9", api_key: secret("ib"), sender: "4478" },
        telegram: { bot_token: secret("tg") },
        instagram: { instagram_account_id: "17", access_token: secret("ig") },
        messenger: { page_id: "p", page_access_token: secret("ms-pat"), app_secret: secret("ms-as") },
        echo: {},
        websocket: {},
      };
      for (const [type, channelConfig] of Object.entries(configs)) {
        const channel = await f.channel(key, type, channelConfig);
        credentials[`${type}.secret`] = channel.secret;
        for (const [field, value] of Object.entries(channelConfig)) {
          if (field === "headers") credentials[`${type}.header`] = (value as { Authorization: string }).Authorization;
          else if (typeof value === "string" && /-[0-9a-f]{24}$/.test(value)) credentials[`${type}.${field}`] = value;
        }
      }
      const rotated = await call(base, "POST", `/v1/channels/${(await f.channel(key, "echo")).id}/rotate-secret`, {
        key,
      });
      credentials.rotated_channel_secret = rotated.body.secret;

      const minted = await call(base, "POST", "/v1/tokens", {
        token: rotated.body.secret as string,
        body: { user: { id: "alice" } },
      });
      expect(minted.status).toBe(201);
      credentials.client_token = minted.body.token;
      credentials.conversation_token = await f.clientToken(key, minted.body.conversation_id, "bob");

      const client = await call(base, "POST", "/v1/oauth-clients", {
        key,
        body: { name: "reporting", scopes: ["conversations:read"] },
      });
      credentials.client_secret = client.body.client_secret;
      const issued = await call(base, "POST", "/auth/token", {
        body: {
          grant_type: "client_credentials",
          client_id: client.body.client_id,
          client_secret: client.body.client_secret,
        },
      });
      expect(issued.status).toBe(200);
      credentials.access_token = issued.body.access_token;
      credentials.refresh_token = issued.body.refresh_token;
      const refreshed = await call(base, "POST", "/auth/refresh", {
        body: { refresh_token: issued.body.refresh_token },
      });
      expect(refreshed.status).toBe(200);
      credentials.refreshed_access_token = refreshed.body.access_token;
      credentials.refreshed_refresh_token = refreshed.body.refresh_token;

      const db = new pg.Client({ connectionString: app.databaseUrl });
      await db.connect();
      await db.query("CHECKPOINT");
      await db.end();
    } finally {
      await app.stop();
    }

    expect(Object.keys(credentials).length).toBeGreaterThan(20);
    const files = [...filesUnder(dataDir)];
    expect(files.some((file) => file.includes("pg_wal"))).toBe(true);
    const found: string[] = [];
    // What is stored in clear (a channel's URL) is found: the scan does read the tables and the WAL.
    let control = 0;
    for (const file of files) {
      const bytes = readFileSync(file);
      if (bytes.includes("http://127.0.0.1:9/hook")) control++;
      for (const [name, value] of Object.entries(credentials)) {
        if (bytes.includes(value)) found.push(`${name} in ${file.slice(dataDir.length)}`);
      }
    }
    expect(control).toBeGreaterThan(0);
    expect(found).toEqual([]);
  });
});
