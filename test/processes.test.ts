import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import {
  type ListTenantsRequest,
  ListTenantsRequestSchema,
  type ListTenantsResponse,
  ListTenantsResponseSchema,
} from "../gen/converger/v1/tenants_pb.js";
import { ADMIN_TOKEN, call } from "./helpers/app.js";
import { createTestDatabase } from "./helpers/database.js";
import { freePort, type ServiceProcess, spawnService } from "./helpers/process.js";

const running: ServiceProcess[] = [];
afterAll(async () => {
  await Promise.all(running.map((p) => p.stop()));
});

async function start(env: Record<string, string>, args: string[], readyLine?: RegExp) {
  const p = await spawnService({ ADMIN_TOKEN, ...env }, args, readyLine);
  running.push(p);
  return p;
}

/** A plain @grpc/grpc-js client, with protobuf-es only for the bytes: no Connect involved. */
function listTenantsOver(address: string, metadata: Record<string, string>) {
  const Client = grpc.makeGenericClientConstructor(
    {
      listTenants: {
        path: "/converger.v1.TenantsService/ListTenants",
        requestStream: false,
        responseStream: false,
        requestSerialize: (m: ListTenantsRequest) => Buffer.from(toBinary(ListTenantsRequestSchema, m)),
        requestDeserialize: (b: Buffer) => fromBinary(ListTenantsRequestSchema, b),
        responseSerialize: (m: ListTenantsResponse) => Buffer.from(toBinary(ListTenantsResponseSchema, m)),
        responseDeserialize: (b: Buffer) => fromBinary(ListTenantsResponseSchema, b),
      },
    },
    "TenantsService",
  );
  const client = new Client(address, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    listTenants: (
      req: unknown,
      md: grpc.Metadata,
      cb: (err: grpc.ServiceError | null, res?: ListTenantsResponse) => void,
    ) => void;
  };
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(metadata)) md.set(k, v);
  return new Promise<ListTenantsResponse>((resolve, reject) => {
    client.listTenants(
      { $typeName: "converger.v1.ListTenantsRequest", limit: 10, cursor: "", offset: 0 },
      md,
      (err, res) => {
        client.close();
        if (err) reject(err);
        else resolve(res as ListTenantsResponse);
      },
    );
  });
}

describe("split processes", () => {
  it("serves a REST call on the gateway process by calling the conversations process over gRPC", async () => {
    const databaseUrl = await createTestDatabase();
    const grpcPort = await freePort();
    const gatewayPort = await freePort();
    const conversations = await start({ DATABASE_URL: databaseUrl, GRPC_PORT: String(grpcPort) }, [
      "--services=conversations",
    ]);
    const gateway = await start(
      {
        PORT: String(gatewayPort),
        GRPC_PORT: String(await freePort()),
        CONVERSATIONS_GRPC_URL: `http://127.0.0.1:${grpcPort}`,
      },
      ["--services", "gateway"],
      /^gateway /m,
    );
    const base = `http://127.0.0.1:${gatewayPort}`;
    const created = await call(base, "POST", "/admin/v1/tenants", { token: ADMIN_TOKEN, body: { name: "split" } });
    expect(created.status).toBe(201);
    const listed = await call(base, "GET", "/v1/channels", { key: created.body.api_key });
    expect(listed.status).toBe(200);
    const db = new pg.Client({ connectionString: databaseUrl });
    await db.connect();
    const rows = await db.query("SELECT name FROM conversations.tenants");
    await db.end();
    expect(rows.rows).toEqual([{ name: "split" }]);

    // The gateway holds no data of its own: without the conversations process it cannot answer.
    await conversations.stop();
    const down = await call(base, "GET", "/v1/channels", { key: created.body.api_key });
    expect(down.status).toBe(503);
    expect(down.body.code).toBe("unavailable");
    await gateway.stop();
  });

  it("answers a plain @grpc/grpc-js client on the gRPC port and on the gateway port", async () => {
    const databaseUrl = await createTestDatabase();
    const grpcPort = await freePort();
    const port = await freePort();
    await start(
      { DATABASE_URL: databaseUrl, GRPC_PORT: String(grpcPort), PORT: String(port), WS_PORT: String(await freePort()) },
      [],
      /^gateway /m,
    );
    await call(`http://127.0.0.1:${port}`, "POST", "/admin/v1/tenants", { token: ADMIN_TOKEN, body: { name: "grpc" } });
    for (const address of [`127.0.0.1:${grpcPort}`, `127.0.0.1:${port}`]) {
      const res = await listTenantsOver(address, { authorization: `Bearer ${ADMIN_TOKEN}` });
      expect(res.tenants.map((x) => x.name)).toEqual(["grpc"]);
      await expect(listTenantsOver(address, { authorization: "Bearer wrong" })).rejects.toMatchObject({
        code: grpc.status.UNAUTHENTICATED,
      });
    }
  });

  it("lets two processes migrate one fresh database at the same time", async () => {
    const databaseUrl = await createTestDatabase();
    const [a, b] = await Promise.all([
      start({ DATABASE_URL: databaseUrl, GRPC_PORT: String(await freePort()) }, ["--services=conversations"]),
      start({ DATABASE_URL: databaseUrl, GRPC_PORT: String(await freePort()) }, ["--services=conversations"]),
    ]);
    const db = new pg.Client({ connectionString: databaseUrl });
    await db.connect();
    // Each service keeps its bookkeeping in its own schema: these rows are the conversations service's.
    const rows = await db.query("SELECT version FROM conversations.schema_migrations ORDER BY version");
    await db.end();
    expect(rows.rows).toEqual([
      { version: "001_init.sql" },
      { version: "002_outbox_per_key.sql" },
      { version: "003_outbox_traceparent.sql" },
      { version: "004_tenant_rate_limit.sql" },
      { version: "005_sealed_channel_secrets.sql" },
    ]);
    await Promise.all([a.stop(), b.stop()]);
  });
});

describe("embedded PostgreSQL", () => {
  it("keeps all data across restarts, stops cleanly on SIGTERM and SIGINT and recovers from SIGKILL", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "converger-restart-"));
    try {
      const port = await freePort();
      const env = {
        DATA_DIR: dataDir,
        PORT: String(port),
        GRPC_PORT: String(await freePort()),
        WS_PORT: String(await freePort()),
      };
      const base = `http://127.0.0.1:${port}`;
      const first = await start(env, [], /^gateway /m);
      const tenant = await call(base, "POST", "/admin/v1/tenants", { token: ADMIN_TOKEN, body: { name: "durable" } });
      const key = tenant.body.api_key;
      const channel = await call(base, "POST", "/v1/channels", {
        key,
        body: { name: "c", type: "websocket", config: {} },
      });
      const conv = await call(base, "POST", "/v1/conversations", { key, body: { channel_id: channel.body.id } });
      const path = `/v1/conversations/${conv.body.id}/activities`;
      await call(base, "POST", path, { key, body: { type: "message", text: "before", from: { id: "u" } } });
      expect(await first.stop("SIGTERM"), first.output()).toBe(0);

      const second = await start(env, [], /^gateway /m);
      const listed = await call(base, "GET", path, { key });
      expect(listed.body.activities.map((a: { text: string }) => a.text)).toEqual(["before"]);
      const next = await call(base, "POST", path, { key, body: { type: "message", text: "after", from: { id: "u" } } });
      expect(next.body.seq).toBe("2");
      expect(await second.stop("SIGINT"), second.output()).toBe(0);

      // Killed outright, the process leaves its PostgreSQL running; the next start takes over.
      const third = await start(env, [], /^gateway /m);
      await third.stop("SIGKILL");
      const fourth = await start(env, [], /^gateway /m);
      const after = await call(base, "GET", path, { key });
      expect(after.body.activities.map((a: { text: string }) => a.text)).toEqual(["before", "after"]);
      expect(await fourth.stop(), fourth.output()).toBe(0);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 90_000);
});
