import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ServiceName } from "../services/common/config.js";
import { createPool } from "../services/common/db/pool.js";
import { startTestApp, type TestApp } from "./helpers/app.js";
import { SERVICE_SCHEMAS } from "./helpers/database.js";

/** Where each service's tables live: the contract of this change, spelled out. */
const TABLES_BY_SCHEMA: Record<string, string[]> = {
  auth: ["admin_sessions", "audit_events", "oauth_clients", "refresh_tokens", "schema_migrations", "signing_keys"],
  conversations: [
    "activities",
    "channels",
    "conversations",
    "idempotency_keys",
    "outbox",
    "read_positions",
    "schema_migrations",
    "tenant_events",
    "tenants",
  ],
  delivery: [
    "channel_circuits",
    "deliveries",
    "delivery_attempts",
    "processed_events",
    "processing_dead_letters",
    "schema_migrations",
  ],
  uploads: ["file_uploads", "files", "schema_migrations", "upload_outbox"],
};

const UNDEFINED_TABLE = "42P01";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t?.stop());

const poolOf = (name: string) => {
  const pool = t.app.pools.get(name as ServiceName);
  if (!pool) throw new Error(`no pool for ${name}`);
  return pool;
};

describe("a schema per service", () => {
  it("creates every service's tables in its own schema and none in public", async () => {
    expect([...SERVICE_SCHEMAS].sort()).toEqual(Object.keys(TABLES_BY_SCHEMA));
    const { rows } = await t.db.query<{ schema: string; tables: string[] }>(
      `SELECT table_schema AS schema, array_agg(table_name::text ORDER BY table_name) AS tables
       FROM information_schema.tables WHERE table_schema = ANY($1) GROUP BY table_schema ORDER BY table_schema`,
      [[...SERVICE_SCHEMAS, "public"]],
    );
    expect(Object.fromEntries(rows.map((r) => [r.schema, r.tables]))).toEqual(TABLES_BY_SCHEMA);
  });

  it("gives each service a pool that sees only its own schema", async () => {
    for (const schema of SERVICE_SCHEMAS) {
      const { rows } = await poolOf(schema).query<{ search_path: string }>("SHOW search_path");
      expect(rows[0]?.search_path).toBe(schema);
    }
  });

  it("stops the conversations pool reading deliveries by name", async () => {
    await expect(poolOf("conversations").query("SELECT count(*) FROM deliveries")).rejects.toMatchObject({
      code: UNDEFINED_TABLE,
    });
    const own = await poolOf("delivery").query<{ n: number }>("SELECT count(*)::int AS n FROM deliveries");
    expect(own.rows[0]?.n).toBe(0);
  });

  it("refuses every bare name of another service's table, on every service's pool", async () => {
    for (const schema of SERVICE_SCHEMAS) {
      for (const [other, tables] of Object.entries(TABLES_BY_SCHEMA)) {
        if (other === schema) continue;
        for (const table of tables.filter((name) => !TABLES_BY_SCHEMA[schema]?.includes(name))) {
          await expect(
            poolOf(schema).query(`SELECT 1 FROM ${table} LIMIT 1`),
            `${schema} → ${table}`,
          ).rejects.toMatchObject({ code: UNDEFINED_TABLE });
        }
      }
    }
  });

  it("keeps one process's connections within what its single pool had, conversations getting the most", () => {
    const sizes = Object.fromEntries(SERVICE_SCHEMAS.map((name) => [name, poolOf(name).options.max]));
    expect(sizes).toEqual({ conversations: 8, auth: 4, delivery: 4, uploads: 4 });
  });
});

describe("a service pool on a URL with startup options of its own", () => {
  it("keeps the URL's options and adds its search_path to them", async () => {
    const url = new URL(String(t.db.options.connectionString));
    url.searchParams.set("options", "-c statement_timeout=4321");
    const pool = createPool(url.toString(), () => undefined, { max: 1, schema: "delivery" });
    try {
      const timeout = await pool.query<{ statement_timeout: string }>("SHOW statement_timeout");
      expect(timeout.rows[0]?.statement_timeout).toBe("4321ms");
      const path = await pool.query<{ search_path: string }>("SHOW search_path");
      expect(path.rows[0]?.search_path).toBe("delivery");
    } finally {
      await pool.end();
    }
  });
});
