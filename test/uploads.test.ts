import { createHash, randomBytes } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, fixtures, startTestApp, type TestApp, uploadOutcome } from "./helpers/app.js";
import { forge } from "./helpers/tokens.js";

const CHUNK = 1024 * 1024;
let t: TestApp;
let key: string;
let f: ReturnType<typeof fixtures>;
beforeAll(async () => {
  t = await startTestApp({ UPLOAD_CHUNK_BYTES: String(CHUNK), TENANT_STORAGE_QUOTA_BYTES: String(200 * CHUNK) });
  f = fixtures(t.baseUrl);
  key = (await f.tenant()).key;
});
afterAll(() => t?.stop());

const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");
const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

async function initiate(body: Record<string, unknown>, auth: { key?: string; token?: string } = { key }) {
  return call(t.baseUrl, "POST", "/v1/files/initiate", { ...auth, body });
}

async function putChunk(
  uploadId: string,
  n: number | string,
  data: Buffer,
  auth: Record<string, string> = { "x-api-key": key },
) {
  const res = await fetch(`${t.baseUrl}/v1/files/upload/${uploadId}/${n}`, {
    method: "PATCH",
    headers: { ...auth, "content-type": "application/octet-stream" },
    body: data,
  });
  // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON bodies
  const body: any = await res.json().catch(() => ({}));
  return { status: res.status, body };
}

const status = async (uploadId: string) =>
  (await call(t.baseUrl, "GET", `/v1/files/upload/${uploadId}/status`, { key })).body;

async function uploadWhole(data: Buffer, extra: Record<string, unknown> = {}) {
  const started = await initiate({
    filename: "blob.bin",
    size: data.length,
    content_type: "application/octet-stream",
    ...extra,
  });
  expect(started.status).toBe(201);
  const { upload_id: id, total_chunks: total } = started.body;
  for (let n = total; n >= 1; n--) {
    expect((await putChunk(id, n, data.subarray((n - 1) * CHUNK, n * CHUNK))).status).toBe(200);
  }
  const done = await call(t.baseUrl, "POST", "/v1/files/complete", { key, body: { upload_id: id } });
  expect(done.status).toBe(202);
  await expect.poll(async () => (await status(id)).status, { timeout: 20_000 }).not.toBe("MERGING");
  return { id, final: await status(id) };
}

describe("chunked uploads", () => {
  it("takes a ~50 MB file in any chunk order and serves it back byte for byte", async () => {
    const data = randomBytes(50 * CHUNK + 12_345);
    const started = await initiate({
      filename: "video.bin",
      size: data.length,
      content_type: "application/octet-stream",
      sha256: sha256(data),
    });
    expect(started.body).toMatchObject({ chunk_size: String(CHUNK), total_chunks: 51 });
    const id = started.body.upload_id as string;
    const order = Array.from({ length: 51 }, (_, i) => i + 1).sort(() => Math.random() - 0.5);
    for (const [i, n] of order.entries()) {
      const res = await putChunk(id, n, data.subarray((n - 1) * CHUNK, n * CHUNK));
      expect(res.status).toBe(200);
      if (i === 9) {
        const partial = await status(id);
        expect(partial.chunks_received).toEqual(order.slice(0, 10).sort((a, b) => a - b));
        expect(partial.percent).toBeCloseTo((10 / 51) * 100, 1);
      }
    }
    const done = await call(t.baseUrl, "POST", "/v1/files/complete", { key, body: { upload_id: id } });
    expect(done.status).toBe(202);
    expect(done.body.status).toBe("MERGING");
    await expect.poll(async () => (await status(id)).status, { timeout: 20_000 }).toBe("COMPLETED");
    const { file_id: fileId, percent } = await status(id);
    expect(percent).toBe(100);
    const meta = await call(t.baseUrl, "GET", `/v1/files/${fileId}`, { key });
    expect(meta.body).toMatchObject({ filename: "video.bin", size: String(data.length), sha256: sha256(data) });
    const content = await fetch(`${t.baseUrl}/v1/files/${fileId}/content`, { headers: { "x-api-key": key } });
    expect(content.status).toBe(200);
    expect(content.headers.get("x-content-type-options")).toBe("nosniff");
    expect(content.headers.get("content-disposition")).toMatch(/^attachment; filename="video.bin"/);
    expect(sha256(Buffer.from(await content.arrayBuffer()))).toBe(sha256(data));
    const part = await fetch(`${t.baseUrl}/v1/files/${fileId}/content`, {
      headers: { "x-api-key": key, range: "bytes=1000-1999" },
    });
    expect(part.status).toBe(206);
    expect(part.headers.get("content-range")).toBe(`bytes 1000-1999/${data.length}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(data.subarray(1000, 2000))).toBe(true);
    // Chunks are gone once merged.
    expect(existsSync(join(t.app.config.dataDir, "blobs", "uploads", id))).toBe(false);
  });

  it("accepts a resent chunk, lists missing chunks on an early complete, and refuses bad chunk numbers and sizes", async () => {
    const data = randomBytes(3 * CHUNK - 100);
    const { upload_id: id } = (
      await initiate({ filename: "a.bin", size: data.length, content_type: "application/octet-stream" })
    ).body;
    expect((await putChunk(id, 2, data.subarray(CHUNK, 2 * CHUNK))).status).toBe(200);
    const again = await putChunk(id, 2, data.subarray(CHUNK, 2 * CHUNK));
    expect(again.body).toEqual({ chunk_number: 2, chunks_received: [2] });
    const early = await call(t.baseUrl, "POST", "/v1/files/complete", { key, body: { upload_id: id } });
    expect(early.status).toBe(409);
    expect(early.body.message).toBe("missing chunks: 1,3");
    for (const n of ["0", "-1", "1.5", "abc", "4"]) {
      expect((await putChunk(id, n, data.subarray(0, CHUNK))).status, n).toBe(400);
    }
    expect((await putChunk(id, 1, data.subarray(0, CHUNK - 1))).status).toBe(400);
    expect((await putChunk(id, 3, data.subarray(2 * CHUNK - 10))).status).toBe(400);
    expect((await status(id)).chunks_received).toEqual([2]);
  });

  it("fails an upload whose bytes do not match the declared SHA-256", async () => {
    const data = randomBytes(CHUNK + 10);
    const { final } = await uploadWhole(data, { sha256: sha256(Buffer.from("something else")) });
    expect(final).toMatchObject({ status: "FAILED" });
    expect(final.error).toMatch(/SHA-256 mismatch/);
  });

  it("refuses HTML declared as PNG at the first chunk with 415", async () => {
    const html = Buffer.from("<!DOCTYPE html><html><script>alert(1)</script></html>".padEnd(600, " "));
    const { upload_id: id } = (await initiate({ filename: "cat.png", size: html.length, content_type: "image/png" }))
      .body;
    const res = await putChunk(id, 1, html);
    expect(res.status).toBe(415);
    expect(res.body.message).toMatch(/HTML, not image\/png/);
    expect((await status(id)).status).toBe("FAILED");
    const png = Buffer.concat([PNG, randomBytes(100)]);
    const ok = (await initiate({ filename: "cat.png", size: png.length, content_type: "image/png" })).body;
    expect((await putChunk(ok.upload_id, 1, png)).status).toBe(200);
  });

  it("keeps only a safe display name, never a path", async () => {
    const data = randomBytes(10);
    const nul = await initiate({ filename: "pa\u0000sswd", size: 10, content_type: "text/plain" });
    expect(nul.status).toBe(400);
    expect(nul.body.details[0].debug.field).toBe("filename");
    const started = await initiate({ filename: "../../etc/pa\u0001ss\nwd", size: 10, content_type: "text/plain" });
    expect(started.status).toBe(201);
    await putChunk(started.body.upload_id, 1, data);
    await call(t.baseUrl, "POST", "/v1/files/complete", { key, body: { upload_id: started.body.upload_id } });
    await expect.poll(async () => (await status(started.body.upload_id)).status, { timeout: 10_000 }).toBe("COMPLETED");
    const meta = await call(t.baseUrl, "GET", `/v1/files/${(await status(started.body.upload_id)).file_id}`, { key });
    expect(meta.body.filename).toBe("passwd");
  });

  it("refuses bad initiate requests and uploads past the tenant's quota (413)", async () => {
    const base = { filename: "x.bin", size: 10, content_type: "application/octet-stream" };
    expect((await initiate({ ...base, content_type: "application/x-msdownload" })).status).toBe(400);
    expect((await initiate({ ...base, size: 0 })).status).toBe(400);
    expect((await initiate({ ...base, sha256: "zz" })).status).toBe(400);
    expect((await initiate({ ...base, size: 3 * 1024 * 1024 * 1024 })).status).toBe(400);
    const over = await initiate({ ...base, size: 201 * CHUNK });
    expect(over.status).toBe(413);
  });

  it("stores one object for two identical uploads", async () => {
    const data = randomBytes(CHUNK + 77);
    const first = await uploadWhole(data);
    const second = await uploadWhole(data);
    expect(first.final.status).toBe("COMPLETED");
    expect(second.final.file_id).not.toBe(first.final.file_id);
    const keys = await t.db.query("SELECT DISTINCT storage_key FROM files WHERE id = ANY($1::uuid[])", [
      [first.final.file_id, second.final.file_id],
    ]);
    expect(keys.rows).toHaveLength(1);
    const content = await fetch(`${t.baseUrl}/v1/files/${second.final.file_id}/content`, {
      headers: { "x-api-key": key },
    });
    expect(sha256(Buffer.from(await content.arrayBuffer()))).toBe(sha256(data));
  });

  it("collects an abandoned upload from the database and the disk", async () => {
    const data = randomBytes(2 * CHUNK);
    const { upload_id: id } = (
      await initiate({ filename: "gone.bin", size: data.length, content_type: "application/octet-stream" })
    ).body;
    await putChunk(id, 1, data.subarray(0, CHUNK));
    const dir = join(t.app.config.dataDir, "blobs", "uploads", id);
    expect(readdirSync(dir)).toEqual(["1"]);
    await t.db.query("UPDATE file_uploads SET updated_at = now() - interval '25 hours' WHERE id = $1", [id]);
    const uploads = t.app.modules.find((m) => m.name === "uploads") as unknown as { collectGarbage(): Promise<number> };
    expect(await uploads.collectGarbage()).toBeGreaterThanOrEqual(1);
    expect(existsSync(dir)).toBe(false);
    expect((await call(t.baseUrl, "GET", `/v1/files/upload/${id}/status`, { key })).status).toBe(404);
  });
});

describe("who may upload", () => {
  it("hides uploads and files from other tenants", async () => {
    const other = await f.tenant("Other");
    const data = randomBytes(100);
    const { id, final } = await uploadWhole(data);
    expect((await call(t.baseUrl, "GET", `/v1/files/upload/${id}/status`, { key: other.key })).status).toBe(404);
    expect((await putChunk(id, 1, data, { "x-api-key": other.key })).status).toBe(404);
    expect((await call(t.baseUrl, "GET", `/v1/files/${final.file_id}`, { key: other.key })).status).toBe(404);
    const content = await fetch(`${t.baseUrl}/v1/files/${final.file_id}/content`, {
      headers: { "x-api-key": other.key },
    });
    expect(content.status).toBe(404);
    expect((await putChunk(id, 1, data, {})).status).toBe(401);
  });

  it("lets a client token upload into its own conversation only", async () => {
    const channel = await f.channel(key, "websocket");
    const minted = await call(t.baseUrl, "POST", "/v1/tokens", {
      token: channel.secret,
      body: { user: { id: "ana" } },
    });
    const token = minted.body.token as string;
    const base = { filename: "me.txt", size: 5, content_type: "text/plain" };
    expect((await initiate(base, { token })).status).toBe(400);
    const { id: otherConversation } = await f.conversation(key, channel.id);
    expect((await initiate({ ...base, conversation_id: otherConversation }, { token })).status).toBe(404);
    const mine = await initiate({ ...base, conversation_id: minted.body.conversation_id }, { token });
    expect(mine.status).toBe(201);
    expect(
      (await putChunk(mine.body.upload_id, 1, Buffer.from("hello"), { authorization: `Bearer ${token}` })).status,
    ).toBe(200);
  });

  it("answers 404 for another tenant's conversation and for a missing one, and takes the caller's own", async () => {
    const other = await f.tenant("Other uploads");
    const theirs = await f.conversation(other.key, (await f.channel(other.key, "websocket")).id);
    const base = { filename: "x.txt", size: 5, content_type: "text/plain" };
    const foreign = await initiate({ ...base, conversation_id: theirs.id });
    expect(foreign.status).toBe(404);
    expect(foreign.body.code).toBe("not_found");
    expect((await initiate({ ...base, conversation_id: "00000000-0000-4000-8000-000000000000" })).status).toBe(404);
    const ours = await f.conversation(key, (await f.channel(key, "websocket")).id);
    expect((await initiate({ ...base, conversation_id: ours.id })).status).toBe(201);
    const stored = await t.db.query("SELECT count(*)::int AS n FROM file_uploads WHERE conversation_id = $1", [
      theirs.id,
    ]);
    expect(stored.rows[0].n).toBe(0);
  });
});

describe("attachments", () => {
  it("attaches the tenant's completed files to activities, expanded with name, size, type and download URL", async () => {
    const data = randomBytes(2048);
    const { final } = await uploadWhole(data, { filename: "report.pdf.bin" });
    const channel = await f.channel(key, "websocket");
    const { id } = await f.conversation(key, channel.id);
    const path = `/v1/conversations/${id}/activities`;
    const posted = await call(t.baseUrl, "POST", path, {
      key,
      body: { type: "message", from: { id: "agent" }, attachments: [{ file_id: final.file_id }] },
    });
    expect(posted.status).toBe(201);
    const expected = {
      file_id: final.file_id,
      name: "report.pdf.bin",
      size: "2048",
      content_type: "application/octet-stream",
      url: `${t.app.config.publicUrl}/v1/files/${final.file_id}/content`,
    };
    expect(posted.body.attachments).toEqual([expected]);
    const listed = await call(t.baseUrl, "GET", path, { key });
    expect(listed.body.activities[0].attachments).toEqual([expected]);

    const other = await f.tenant("Elsewhere");
    const theirs = await uploadWhole(randomBytes(10));
    const foreignChannel = await f.channel(other.key, "websocket");
    const foreign = await f.conversation(other.key, foreignChannel.id);
    const stolen = await call(t.baseUrl, "POST", `/v1/conversations/${foreign.id}/activities`, {
      key: other.key,
      body: { type: "message", from: { id: "x" }, attachments: [{ file_id: theirs.final.file_id }] },
    });
    expect(stolen.status).toBe(404);
    const unfinished = (await initiate({ filename: "wip.bin", size: 10, content_type: "application/octet-stream" }))
      .body;
    for (const fileId of [unfinished.upload_id, "00000000-0000-4000-8000-000000000000"]) {
      const res = await call(t.baseUrl, "POST", path, {
        key,
        body: { type: "message", from: { id: "agent" }, attachments: [{ file_id: fileId }] },
      });
      expect(res.status, fileId).toBe(404);
    }
  });
});

describe("scopes and tus for client tokens", () => {
  it("needs files:write for OAuth clients", async () => {
    const { id } = await f.tenant("Scoped");
    const body = { filename: "x.txt", size: 3, content_type: "text/plain" };
    const readOnly = await forge(t, { claims: { tenant_id: id, scope: "conversations:read" } });
    expect((await initiate(body, { token: readOnly })).status).toBe(403);
    const writer = await forge(t, { claims: { tenant_id: id, scope: "files:write" } });
    expect((await initiate(body, { token: writer })).status).toBe(201);
  });

  it("lets a client token create a tus upload in its own conversation, named in Upload-Metadata", async () => {
    const channel = await f.channel(key, "websocket");
    const minted = await call(t.baseUrl, "POST", "/v1/tokens", {
      token: channel.secret,
      body: { user: { id: "tus-user" } },
    });
    const b64 = (text: string) => Buffer.from(text).toString("base64");
    const create = (conversationId: string) =>
      fetch(`${t.baseUrl}/v1/tus/`, {
        method: "POST",
        headers: {
          "tus-resumable": "1.0.0",
          authorization: `Bearer ${minted.body.token}`,
          "upload-length": "5",
          "upload-metadata": `filename ${b64("note.txt")},filetype ${b64("text/plain")},conversation_id ${b64(conversationId)}`,
        },
      });
    const other = await f.conversation(key, channel.id);
    expect((await create(other.id)).status).toBe(404);
    expect((await create(minted.body.conversation_id)).status).toBe(201);
  });
});

describe("a merge cut off by a crash", () => {
  it("runs again when the process comes back, from the outbox", async () => {
    // An app of its own (database and folder), stopped between `complete`'s commit and the merge.
    const first = await startTestApp({ UPLOAD_CHUNK_BYTES: String(CHUNK) });
    const env = {
      UPLOAD_CHUNK_BYTES: String(CHUNK),
      DATABASE_URL: first.app.config.databaseUrl ?? "",
      DATA_DIR: first.app.config.dataDir,
    };
    const firstKey = (await fixtures(first.baseUrl).tenant()).key;
    const data = randomBytes(2 * CHUNK + 5);
    const started = await call(first.baseUrl, "POST", "/v1/files/initiate", {
      key: firstKey,
      body: { filename: "late.bin", size: data.length, content_type: "application/octet-stream" },
    });
    const id = started.body.upload_id as string;
    for (const n of [1, 2, 3]) {
      const res = await fetch(`${first.baseUrl}/v1/files/upload/${id}/${n}`, {
        method: "PATCH",
        headers: { "x-api-key": firstKey },
        body: data.subarray((n - 1) * CHUNK, n * CHUNK),
      });
      expect(res.status).toBe(200);
    }
    await first.stop();
    // What a crash right after `complete` committed leaves: MERGING, its event still in the outbox.
    const db = new (await import("pg")).default.Client({ connectionString: env.DATABASE_URL });
    await db.connect();
    await db.query("UPDATE uploads.file_uploads SET status = 'MERGING' WHERE id = $1", [id]);
    await db.query(
      `INSERT INTO uploads.upload_outbox (event_id, topic, key, tenant_id, payload)
       SELECT gen_random_uuid(), 'converger.uploads', id::text, tenant_id, jsonb_build_object('type', 'upload.completed', 'upload_id', id)
       FROM uploads.file_uploads WHERE id = $1`,
      [id],
    );
    await db.end();
    const second = await startTestApp(env);
    try {
      const status = await uploadOutcome(second.baseUrl, firstKey, id, 5_000);
      expect(status.status).toBe("COMPLETED");
      const content = await fetch(`${second.baseUrl}/v1/files/${status.file_id}/content`, {
        headers: { "x-api-key": firstKey },
      });
      expect(sha256(Buffer.from(await content.arrayBuffer()))).toBe(sha256(data));
    } finally {
      await second.stop();
    }
  });
});
