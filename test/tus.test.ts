import { createHash, randomBytes } from "node:crypto";
import * as tus from "tus-js-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, fixtures, startTestApp, type TestApp, uploadOutcome } from "./helpers/app.js";

let t: TestApp;
let key: string;
beforeAll(async () => {
  t = await startTestApp();
  key = (await fixtures(t.baseUrl).tenant()).key;
});
afterAll(() => t?.stop());

const sha = (algorithm: string, data: Buffer) => createHash(algorithm).update(data).digest();
const TUS = { "tus-resumable": "1.0.0" };

function tusCall(method: string, path: string, headers: Record<string, string> = {}, body?: Buffer) {
  const init = { method, headers: { ...TUS, "x-api-key": key, ...headers } };
  return fetch(`${t.baseUrl}${path}`, body === undefined ? init : { ...init, body });
}

async function create(size: number, metadata = "filename aGVsbG8uYmlu") {
  const res = await tusCall("POST", "/v1/tus/", { "upload-length": String(size), "upload-metadata": metadata });
  expect(res.status).toBe(201);
  return res.headers.get("location") as string;
}

const waitCompleted = (uploadId: string) => uploadOutcome(t.baseUrl, key, uploadId, 5_000);

describe("tus 1.0.0", () => {
  it("answers 404 to a creation naming another tenant's conversation or a missing one", async () => {
    const f = fixtures(t.baseUrl);
    const other = await f.tenant("Other tus");
    const theirs = await f.conversation(other.key, (await f.channel(other.key, "websocket")).id);
    const ours = await f.conversation(key, (await f.channel(key, "websocket")).id);
    const meta = (conversationId: string) =>
      `filename aGVsbG8uYmlu,conversation_id ${Buffer.from(conversationId).toString("base64")}`;
    for (const id of [theirs.id, "00000000-0000-4000-8000-000000000000"]) {
      const res = await tusCall("POST", "/v1/tus/", { "upload-length": "5", "upload-metadata": meta(id) });
      expect(res.status, id).toBe(404);
    }
    await create(5, meta(ours.id));
  });

  it("uploads with tus-js-client, survives an interruption and resumes where it stopped", async () => {
    const data = randomBytes(3 * 1024 * 1024 + 123);
    let url = "";
    const options = {
      endpoint: `${t.baseUrl}/v1/tus/`,
      headers: { "x-api-key": key },
      chunkSize: 256 * 1024,
      metadata: { filename: "movie.bin", filetype: "application/octet-stream" },
      retryDelays: [0, 100],
    };
    await new Promise<void>((resolve, reject) => {
      const first = new tus.Upload(data, {
        ...options,
        onProgress(sent) {
          if (sent >= 1024 * 1024 && !url) {
            url = first.url ?? "";
            void first.abort().then(resolve);
          }
        },
        onError: reject,
      });
      first.start();
    });
    expect(url).toMatch(/\/v1\/tus\/[0-9a-f-]{36}$/);
    const offset = Number((await tusCall("HEAD", new URL(url).pathname)).headers.get("upload-offset"));
    expect(offset).toBeGreaterThanOrEqual(1024 * 1024);
    expect(offset).toBeLessThan(data.length);
    let resumedFrom = -1;
    await new Promise<void>((resolve, reject) => {
      const second = new tus.Upload(data, {
        ...options,
        uploadUrl: url,
        onProgress(sent) {
          if (resumedFrom < 0) resumedFrom = sent;
        },
        onSuccess: () => resolve(),
        onError: reject,
      });
      second.start();
    });
    expect(resumedFrom).toBeGreaterThanOrEqual(offset); // it went on from the offset, not from 0
    const uploadId = url.split("/").pop() as string;
    const done = await waitCompleted(uploadId);
    expect(done).toMatchObject({ status: "COMPLETED", chunks_received: [1], percent: 100 });
    const content = await fetch(`${t.baseUrl}/v1/files/${done.file_id}/content`, { headers: { "x-api-key": key } });
    expect(sha("sha256", Buffer.from(await content.arrayBuffer())).equals(sha("sha256", data))).toBe(true);
    const meta = await call(t.baseUrl, "GET", `/v1/files/${done.file_id}`, { key });
    expect(meta.body.filename).toBe("movie.bin");
  });

  it("answers OPTIONS with its version and extensions, and 412 without Tus-Resumable", async () => {
    const res = await fetch(`${t.baseUrl}/v1/tus/`, { method: "OPTIONS" });
    expect(res.status).toBe(204);
    expect(res.headers.get("tus-version")).toBe("1.0.0");
    expect(res.headers.get("tus-extension")).toBe("creation,creation-with-upload,termination,checksum,expiration");
    const bare = await fetch(`${t.baseUrl}/v1/tus/`, {
      method: "POST",
      headers: { "x-api-key": key, "upload-length": "5" },
    });
    expect(bare.status).toBe(412);
  });

  it("refuses a wrong offset (409), a wrong content type (415) and a checksum mismatch (460, bytes discarded)", async () => {
    const data = randomBytes(1000);
    const path = new URL(await create(data.length), t.baseUrl).pathname;
    const patch = (offset: number, body: Buffer, headers: Record<string, string> = {}) =>
      tusCall(
        "PATCH",
        path,
        { "content-type": "application/offset+octet-stream", "upload-offset": String(offset), ...headers },
        body,
      );
    expect((await patch(10, data.subarray(0, 100))).status).toBe(409);
    expect(
      (await tusCall("PATCH", path, { "content-type": "application/octet-stream", "upload-offset": "0" }, data)).status,
    ).toBe(415);
    const wrong = `sha1 ${sha("sha1", Buffer.from("other")).toString("base64")}`;
    expect((await patch(0, data.subarray(0, 400), { "upload-checksum": wrong })).status).toBe(460);
    expect((await tusCall("HEAD", path)).headers.get("upload-offset")).toBe("0");
    const right = `sha256 ${sha("sha256", data.subarray(0, 400)).toString("base64")}`;
    const ok = await patch(0, data.subarray(0, 400), { "upload-checksum": right });
    expect(ok.status).toBe(204);
    expect(ok.headers.get("upload-offset")).toBe("400");
    expect((await patch(400, data.subarray(400))).status).toBe(204);
    const uploadId = path.split("/").pop() as string;
    expect((await waitCompleted(uploadId)).status).toBe("COMPLETED");
    // Finished: HEAD still answers the full offset and a PATCH at a wrong offset answers 409.
    const head = await tusCall("HEAD", path);
    expect(head.headers.get("upload-offset")).toBe("1000");
    expect((await patch(0, data.subarray(0, 10))).status).toBe(409);
  });

  it("creates with the first bytes (creation-with-upload), terminates, and expires", async () => {
    const data = randomBytes(64);
    const created = await tusCall(
      "POST",
      "/v1/tus/",
      { "upload-length": "128", "content-type": "application/offset+octet-stream" },
      data,
    );
    expect(created.status).toBe(201);
    expect(created.headers.get("upload-offset")).toBe("64");
    const path = new URL(created.headers.get("location") as string, t.baseUrl).pathname;
    expect((await tusCall("DELETE", path)).status).toBe(204);
    expect((await tusCall("HEAD", path)).status).toBe(404);

    const stale = new URL(await create(10), t.baseUrl).pathname;
    await t.db.query("UPDATE file_uploads SET updated_at = now() - interval '25 hours' WHERE id = $1", [
      stale.split("/").pop(),
    ]);
    expect((await tusCall("HEAD", stale)).status).toBe(410);
  });

  it("keeps other tenants out", async () => {
    const other = await fixtures(t.baseUrl).tenant("Other");
    const path = new URL(await create(10), t.baseUrl).pathname;
    const res = await fetch(`${t.baseUrl}${path}`, { method: "HEAD", headers: { ...TUS, "x-api-key": other.key } });
    expect(res.status).toBe(404);
  });
});
