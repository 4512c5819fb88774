import { readFileSync } from "node:fs";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../services/common/obs/logger.js";
import { migrate } from "../services/host/db/migrate.js";
import { openServicePools } from "../services/host/db/pools.js";
import { REGISTRY } from "../services/host/registry.js";
import { call, startTestApp, type TestApp } from "./helpers/app.js";
import { createTestDatabase, SERVICE_SCHEMAS } from "./helpers/database.js";
import { startHttpSink } from "./helpers/http-sink.js";
import { openStoredChannel } from "./helpers/sealed.js";

// A database as the code before per-service schemas left it; its header says how it was made.
const FIXTURE = readFileSync(new URL("./fixtures/legacy-layout.sql", import.meta.url), "utf8");
const [, API_KEY = "", CLIENT_ID = "", CLIENT_SECRET = "", KEK = ""] =
  /API key (\S+), OAuth client (\S+)\n-- secret (\S+), KEY_ENCRYPTION_KEY (\S+)\./.exec(FIXTURE) ?? [];
const OWNERS = Object.values(REGISTRY).flatMap((r) => (r?.migrations ? [r.name] : []));

/** Each table's rows, as one digest, keyed `schema.table`. */
async function rowDigests(db: pg.ClientBase, schemas: string[]): Promise<Record<string, string>> {
  const { rows: tables } = await db.query<{ schema: string; name: string }>(
    `SELECT table_schema AS schema, table_name AS name FROM information_schema.tables
     WHERE table_schema = ANY($1) AND table_type = 'BASE TABLE'`,
    [schemas],
  );
  const digests: Record<string, string> = {};
  for (const { schema, name } of tables) {
    const { rows } = await db.query(`SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS d
      FROM ${schema}.${name} t`);
    digests[`${schema}.${name}`] = `${rows[0].d}`;
  }
  return digests;
}

// md5 of the empty string: the digest of a table without rows.
const EMPTY_DIGEST = "d41d8cd98f00b204e9800998ecf8427e";

/** Tables, columns, indexes, sequences and constraints of the given schemas, and any function or type in them. */
async function catalog(db: pg.ClientBase, schemas: string[]) {
  const query = async (sql: string) => (await db.query(sql, [schemas])).rows;
  return {
    relations: await query(`SELECT n.nspname, c.relname, c.relkind,
        CASE WHEN c.relkind = 'i' THEN pg_get_indexdef(c.oid) END AS def
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY($1) ORDER BY 1, 2`),
    columns: await query(`SELECT table_schema, table_name, column_name, ordinal_position, data_type, column_default,
        is_nullable FROM information_schema.columns WHERE table_schema = ANY($1) ORDER BY 1, 2, 4`),
    constraints: await query(`SELECT n.nspname, c.conrelid::regclass::text AS rel, c.conname,
        pg_get_constraintdef(c.oid) AS def
      FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = ANY($1) ORDER BY 1, 2, 3`),
    sequences: await query(`SELECT s.schemaname, s.sequencename, pg_get_serial_sequence(d.refobjid::regclass::text,
        a.attname) AS owned_by_column
      FROM pg_sequences s JOIN pg_depend d ON d.objid = (s.schemaname || '.' || s.sequencename)::regclass
        AND d.deptype = 'a'
      JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
      WHERE s.schemaname = ANY($1) ORDER BY 1, 2`),
    routines: await query(
      "SELECT proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = ANY($1)",
    ),
    types: await query(`SELECT typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
      WHERE n.nspname = ANY($1) AND t.typtype IN ('e', 'd', 'r', 'm')`),
  };
}

// What a signing key holds; verify_until is left out, as the app may rotate the key when it starts.
const SIGNING_KEY_COLUMNS = "kid, alg, public_jwk, private_jwk_enc, created_at";
// A channel's columns but its secret, which the app seals when it starts.
const CHANNEL_COLUMNS = "id, tenant_id, name, type, status, config, secret_hash, created_at, updated_at";

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return client;
}

const sink = await startHttpSink();
let legacyUrl: string;
let before: {
  digests: Record<string, string>;
  bookkeeping: { owner: string; version: string; applied_at: Date }[];
  signingKeys: unknown[];
  channels: { id: string; secret: string }[];
  channelRows: unknown[];
};
let t: TestApp;
let inspector: pg.Client;

beforeAll(async () => {
  legacyUrl = await createTestDatabase();
  const legacy = await connect(legacyUrl);
  await legacy.query(FIXTURE);
  before = {
    digests: await rowDigests(legacy, ["public"]),
    bookkeeping: (await legacy.query("SELECT owner, version, applied_at FROM schema_migrations")).rows,
    signingKeys: (await legacy.query(`SELECT ${SIGNING_KEY_COLUMNS} FROM signing_keys ORDER BY kid`)).rows,
    channels: (await legacy.query("SELECT id, secret FROM channels ORDER BY id")).rows,
    channelRows: (await legacy.query(`SELECT ${CHANNEL_COLUMNS} FROM channels ORDER BY id`)).rows,
  };
  await legacy.end();
  t = await startTestApp({ DATABASE_URL: legacyUrl, KEY_ENCRYPTION_KEY: KEK, WEBHOOK_ALLOW_PRIVATE: "true" });
  inspector = await connect(legacyUrl);
});
afterAll(async () => {
  await inspector?.end();
  await t?.stop();
  await sink.close();
});

describe("a database made before each service had its schema", () => {
  it("moves every table into its service's schema with the layout a fresh database gets", async () => {
    const freshUrl = await createTestDatabase();
    const pools = openServicePools(freshUrl, OWNERS, () => undefined);
    for (const [name, pool] of pools)
      await migrate(pool, name, REGISTRY[name]!.migrations!.dir, createLogger("silent"));
    await Promise.all([...pools.values()].map((pool) => pool.end()));
    const fresh = await connect(freshUrl);
    try {
      const schemas = [...SERVICE_SCHEMAS, "public"];
      const upgraded = await catalog(inspector, schemas);
      expect(upgraded).toEqual(await catalog(fresh, schemas));
      // The serial columns' sequences went with their tables.
      expect(upgraded.sequences.map((row) => row.owned_by_column)).toEqual([
        "auth.audit_events_id_seq",
        "conversations.outbox_id_seq",
        "uploads.upload_outbox_id_seq",
      ]);
    } finally {
      await fresh.end();
    }
  });

  it("keeps every row, each table now under its service's schema", async () => {
    const after = await rowDigests(inspector, SERVICE_SCHEMAS);
    // Made by a migration after the legacy layout (delivery/003): new and empty, nothing to keep.
    expect(after["delivery.delivery_attempts"]).toBe(EMPTY_DIGEST);
    const moved = Object.fromEntries(
      Object.entries(after)
        .filter(([table]) => !/\.(schema_migrations|signing_keys|channels|delivery_attempts)$/.test(table))
        .map(([table, digest]) => [`public.${table.split(".")[1]}`, digest]),
    );
    const {
      "public.schema_migrations": _,
      "public.signing_keys": __,
      "public.channels": ___,
      ...legacy
    } = before.digests;
    expect(moved).toEqual(legacy);
    const kids = before.signingKeys.map((key) => (key as { kid: string }).kid);
    const keys = await inspector.query(
      `SELECT ${SIGNING_KEY_COLUMNS} FROM auth.signing_keys WHERE kid = ANY($1) ORDER BY kid`,
      [kids],
    );
    expect(kids.length).toBeGreaterThan(0);
    expect(keys.rows).toEqual(before.signingKeys);
    // Channels keep every column but their secret, now sealed (and opening to the same secret).
    const channels = await inspector.query(`SELECT ${CHANNEL_COLUMNS} FROM conversations.channels ORDER BY id`);
    expect(channels.rows).toEqual(before.channelRows);
    expect(before.channels.length).toBeGreaterThan(0);
    for (const channel of before.channels) {
      const stored = await openStoredChannel(t, channel.id);
      expect(stored.row.secret).toBeNull();
      expect(stored.secret).toBe(channel.secret);
    }
  });

  it("carries the migrations bookkeeping over, so nothing ran twice, and drops the shared table", async () => {
    for (const owner of OWNERS) {
      const { rows } = await inspector.query(
        `SELECT version, applied_at FROM ${owner}.schema_migrations ORDER BY version`,
      );
      const legacy = before.bookkeeping.filter((row) => row.owner === owner).map(({ owner: _, ...row }) => row);
      // Migrations written after the fixture run once on top; those it had are not run again.
      const versions = new Set(legacy.map((row) => row.version));
      expect(rows.filter((row) => versions.has(row.version))).toEqual(
        legacy.sort((a, b) => a.version.localeCompare(b.version)),
      );
    }
    const shared = await inspector.query("SELECT to_regclass('public.schema_migrations') AS t");
    expect(shared.rows[0].t).toBeNull();
  });
});

describe("the product on the upgraded database", () => {
  it("reads the old conversation, replays an old idempotency key and stores, delivers and reads a new activity", async () => {
    const { rows } = await inspector.query("SELECT id, channel_id FROM conversations.conversations");
    const [{ id, channel_id: channelId }] = rows;
    const old = await call(t.baseUrl, "GET", `/v1/conversations/${id}/activities?watermark=0`, { key: API_KEY });
    expect(old.status).toBe(200);
    expect(old.body.activities.map((a: { text: string }) => a.text)).toEqual(["one", "two", "three"]);

    const replay = await call(t.baseUrl, "POST", `/v1/conversations/${id}/activities`, {
      key: API_KEY,
      headers: { "idempotency-key": "legacy-1" },
      body: { type: "message", text: "one", from: { id: "alice", name: "Alice" } },
    });
    expect(replay.status).toBe(200);
    expect(replay.body.seq).toBe("1");

    const repointed = await call(t.baseUrl, "PATCH", `/v1/channels/${channelId}`, {
      key: API_KEY,
      body: { config: { url: sink.url } },
    });
    expect(repointed.status).toBe(200);
    const lastOutboxId = (await inspector.query("SELECT max(id)::int AS n FROM conversations.outbox")).rows[0].n;
    const posted = await call(t.baseUrl, "POST", `/v1/conversations/${id}/activities`, {
      key: API_KEY,
      body: { type: "message", text: "four", from: { id: "alice", name: "Alice" } },
    });
    expect(posted.status).toBe(201);
    expect(posted.body.seq).toBe("4");
    const read = await call(t.baseUrl, "GET", `/v1/conversations/${id}/activities?watermark=3`, { key: API_KEY });
    expect(read.body.activities.map((a: { text: string }) => a.text)).toEqual(["four"]);
    // The outbox's sequence moved with its table and went on counting from where it was.
    const outbox = await inspector.query(
      "SELECT id::int FROM conversations.outbox WHERE key = $1 ORDER BY id DESC LIMIT 1",
      [id],
    );
    expect(outbox.rows[0].id).toBeGreaterThan(lastOutboxId);

    await expect.poll(() => sink.requests.length).toBe(1);
    expect(JSON.parse(sink.requests[0]!.body).activity.text).toBe("four");
    await expect
      .poll(
        async () =>
          (await call(t.baseUrl, "GET", `/v1/activities/${posted.body.id}/deliveries`, { key: API_KEY })).body,
      )
      .toMatchObject({ deliveries: [{ status: "delivered" }] });
    const delivered = await call(t.baseUrl, "GET", "/v1/deliveries?status=delivered", { key: API_KEY });
    expect(delivered.body.deliveries).toHaveLength(4);
  });

  it("issues tokens to the old OAuth client and serves the old upload", async () => {
    const token = await call(t.baseUrl, "POST", "/auth/token", {
      body: { grant_type: "client_credentials", client_id: CLIENT_ID, client_secret: CLIENT_SECRET },
    });
    expect(token.status).toBe(200);
    const listed = await call(t.baseUrl, "GET", "/v1/conversations", { token: token.body.access_token });
    expect(listed.status).toBe(200);
    expect(listed.body.conversations).toHaveLength(1);

    const { rows } = await inspector.query("SELECT id FROM uploads.file_uploads");
    const status = await call(t.baseUrl, "GET", `/v1/files/upload/${rows[0].id}/status`, { key: API_KEY });
    expect(status.body).toMatchObject({ status: "COMPLETED", percent: 100 });
    const file = await call(t.baseUrl, "GET", `/v1/files/${status.body.file_id}`, { key: API_KEY });
    expect(file.body).toMatchObject({ filename: "notes.txt", content_type: "text/plain" });
  });
});
