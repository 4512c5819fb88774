import { randomBytes } from "node:crypto";
import pg from "pg";
import { inject } from "vitest";
import { schemaFor } from "../../services/host/db/pools.js";
import { REGISTRY } from "../../services/host/registry.js";

/** A fresh, empty database on the shared test server; returns its URL. */
export async function createTestDatabase(): Promise<string> {
  const serverUrl = inject("postgresUrl");
  const name = `test_${randomBytes(6).toString("hex")}`;
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** The schemas of every service with tables. */
export const SERVICE_SCHEMAS = Object.values(REGISTRY).flatMap((registration) =>
  registration?.migrations ? [schemaFor(registration.name)] : [],
);

/**
 * A pool that reads the database the way an insider would: every service's
 * schema on its search_path, so tests name tables bare (no two services'
 * tables share a name), unlike the services' own pools, each of which sees
 * only its schema.
 */
export function openInspector(url: string, max = 4): pg.Pool {
  return new pg.Pool({ connectionString: url, max, options: `-c search_path=${SERVICE_SCHEMAS.join(",")}` });
}
