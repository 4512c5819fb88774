import { createHash, randomBytes } from "node:crypto";
import { Client } from "minio";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, fixtures, startTestApp, type TestApp, uploadOutcome } from "./helpers/app.js";
import { type S3Server, startS3 } from "./helpers/s3.js";

// S3 requires every part but the last of a composed object to be ≥ 5 MiB.
const CHUNK = 5 * 1024 * 1024;
let s3: S3Server;
let t: TestApp;
let key: string;
let bucket: Client;
beforeAll(async () => {
  s3 = await startS3();
  t = await startTestApp({ ...s3.env, UPLOAD_CHUNK_BYTES: String(CHUNK) });
  key = (await fixtures(t.baseUrl).tenant()).key;
  const url = new URL(s3.endpoint);
  bucket = new Client({
    endPoint: url.hostname,
    port: Number(url.port),
    useSSL: false,
    accessKey: "test",
    secretKey: "testtest",
    pathStyle: true,
  });
}, 60_000);
afterAll(async () => {
  await t?.stop();
  await s3?.stop();
});

const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");

async function objects(prefix: string): Promise<string[]> {
  const names: string[] = [];
  for await (const item of bucket.listObjectsV2("converger-test", prefix, true)) if (item.name) names.push(item.name);
  return names;
}

async function putChunk(uploadId: string, n: number, data: Buffer) {
  return fetch(`${t.baseUrl}/v1/files/upload/${uploadId}/${n}`, {
    method: "PATCH",
    headers: { "x-api-key": key },
    body: data,
  });
}

async function uploadWhole(data: Buffer, order?: number[]) {
  const started = await call(t.baseUrl, "POST", "/v1/files/initiate", {
    key,
    body: { filename: "s3.bin", size: data.length, content_type: "application/octet-stream", sha256: sha256(data) },
  });
  const { upload_id: id, total_chunks: total } = started.body;
  for (const n of order ?? Array.from({ length: total }, (_, i) => i + 1)) {
    expect((await putChunk(id, n, data.subarray((n - 1) * CHUNK, n * CHUNK))).status).toBe(200);
  }
  expect((await call(t.baseUrl, "POST", "/v1/files/complete", { key, body: { upload_id: id } })).status).toBe(202);
  const status = await uploadOutcome(t.baseUrl, key, id, 30_000);
  return { id, total: total as number, status };
}

describe("uploads on S3", () => {
  it("composes a ~50 MB out-of-order upload server-side, serves it byte for byte and deletes the chunk objects", async () => {
    const data = randomBytes(10 * CHUNK + 4321);
    const order = [11, 3, 7, 1, 10, 2, 9, 4, 8, 5, 6];
    const { id, status } = await uploadWhole(data, order);
    expect(status.status, String(status.error)).toBe("COMPLETED");
    expect(await objects(`uploads/${id}/`)).toEqual([]);
    const content = await fetch(`${t.baseUrl}/v1/files/${status.file_id}/content`, { headers: { "x-api-key": key } });
    expect(sha256(Buffer.from(await content.arrayBuffer()))).toBe(sha256(data));
    const part = await fetch(`${t.baseUrl}/v1/files/${status.file_id}/content`, {
      headers: { "x-api-key": key, range: `bytes=${CHUNK - 5}-${CHUNK + 4}` },
    });
    expect(part.status).toBe(206);
    expect(Buffer.from(await part.arrayBuffer()).equals(data.subarray(CHUNK - 5, CHUNK + 5))).toBe(true);
  }, 120_000);

  it("stores one object for two identical uploads", async () => {
    const data = randomBytes(CHUNK + 99);
    const before = await objects("files/");
    const first = await uploadWhole(data);
    const second = await uploadWhole(data);
    expect([first.status.status, second.status.status]).toEqual(["COMPLETED", "COMPLETED"]);
    expect((await objects("files/")).length).toBe(before.length + 1);
  }, 60_000);

  it("collects an abandoned upload's chunk objects", async () => {
    const data = randomBytes(2 * CHUNK);
    const started = await call(t.baseUrl, "POST", "/v1/files/initiate", {
      key,
      body: { filename: "gone.bin", size: data.length, content_type: "application/octet-stream" },
    });
    const id = started.body.upload_id as string;
    await putChunk(id, 2, data.subarray(CHUNK));
    expect(await objects(`uploads/${id}/`)).toEqual([`uploads/${id}/2`]);
    await t.db.query("UPDATE file_uploads SET updated_at = now() - interval '25 hours' WHERE id = $1", [id]);
    const uploads = t.app.modules.find((m) => m.name === "uploads") as unknown as { collectGarbage(): Promise<number> };
    await uploads.collectGarbage();
    expect(await objects(`uploads/${id}/`)).toEqual([]);
  }, 60_000);

  it("takes tus uploads too (staged on disk, stored as one object)", async () => {
    const data = randomBytes(300_000);
    const created = await fetch(`${t.baseUrl}/v1/tus/`, {
      method: "POST",
      headers: {
        "tus-resumable": "1.0.0",
        "x-api-key": key,
        "upload-length": String(data.length),
        "content-type": "application/offset+octet-stream",
      },
      body: data,
    });
    expect(created.status).toBe(201);
    const id = (created.headers.get("location") as string).split("/").pop() as string;
    const status = await uploadOutcome(t.baseUrl, key, id);
    expect(status.status).toBe("COMPLETED");
    const content = await fetch(`${t.baseUrl}/v1/files/${status.file_id}/content`, { headers: { "x-api-key": key } });
    expect(sha256(Buffer.from(await content.arrayBuffer()))).toBe(sha256(data));
  }, 60_000);
});
