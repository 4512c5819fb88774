import { createHash, randomBytes } from "node:crypto";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, fixtures, startTestApp, type TestApp } from "../../../test/helpers/app.js";
import type { ClientContext } from "../src/context.js";
import { createFiles, type UploadProgress } from "../src/files.js";

const CHUNK = 64 * 1024;
const MAX_BYTES = 40 * CHUNK;
let t: TestApp;
let key: string;
let f: ReturnType<typeof fixtures>;
beforeAll(async () => {
  t = await startTestApp({ UPLOAD_CHUNK_BYTES: String(CHUNK), UPLOAD_MAX_BYTES: String(MAX_BYTES) });
  f = fixtures(t.baseUrl);
  key = (await f.tenant()).key;
});
afterAll(() => t?.stop());

interface Credential {
  apiKey?: string;
  token?: string;
}

/** What `new Converger()` builds (not on this branch), with a fetch the test may watch or break. */
function contextFor(credential: Credential, fetch: typeof globalThis.fetch = globalThis.fetch): ClientContext {
  const credentials: Interceptor = (next) => (req) => {
    if (credential.apiKey !== undefined) req.header.set("x-api-key", credential.apiKey);
    if (credential.token !== undefined) req.header.set("authorization", `Bearer ${credential.token}`);
    return next(req);
  };
  return {
    baseUrl: t.baseUrl,
    transport: createConnectTransport({ baseUrl: t.baseUrl, httpVersion: "1.1", interceptors: [credentials] }),
    token: async () => credential.token,
    apiKey: credential.apiKey,
    WebSocket: undefined,
    fetch,
  };
}

/** A fetch that records the chunk number of every PATCH it lets through, and can fail chosen ones. */
function watchedFetch(fail: (chunk: number) => boolean = () => false) {
  const sent: number[] = [];
  const load = { inFlight: 0, peak: 0 };
  const fetch: typeof globalThis.fetch = async (input, init) => {
    const chunk = /\/v1\/files\/upload\/[^/]+\/(\d+)$/.exec(String(input));
    if (init?.method !== "PATCH" || !chunk) return globalThis.fetch(input, init);
    const n = Number(chunk[1]);
    sent.push(n);
    if (fail(n)) throw new TypeError("fetch failed");
    load.peak = Math.max(load.peak, ++load.inFlight);
    try {
      return await globalThis.fetch(input, init);
    } finally {
      load.inFlight--;
    }
  };
  return { fetch, sent, load };
}

async function download(fileId: string): Promise<Buffer> {
  const res = await fetch(`${t.baseUrl}/v1/files/${fileId}/content`, { headers: { "x-api-key": key } });
  expect(res.status).toBe(200);
  return Buffer.from(await res.arrayBuffer());
}

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");
const serverChunks = async (uploadId: string): Promise<number[]> =>
  (await call(t.baseUrl, "GET", `/v1/files/upload/${uploadId}/status`, { key })).body.chunks_received;

describe("files.upload", () => {
  it("reports progress that only grows, up to the size, and resolves with the stored file", async () => {
    const data = randomBytes(10 * CHUNK + 777);
    const progress: UploadProgress[] = [];
    const file = await createFiles(contextFor({ apiKey: key })).upload(data, {
      filename: "notes.bin",
      onProgress: (p) => progress.push(p),
    });
    expect(file).toMatchObject({ filename: "notes.bin", size: BigInt(data.length), sha256: sha256(data) });
    expect(progress[0]).toEqual({ loaded: 0, total: data.length });
    expect(progress.at(-1)).toEqual({ loaded: data.length, total: data.length });
    expect(progress).toHaveLength(1 + 11);
    for (let i = 1; i < progress.length; i++) expect(progress[i]!.loaded).toBeGreaterThan(progress[i - 1]!.loaded);
  });

  it("sends a Blob in parallel chunks that download back byte for byte", async () => {
    // Declared PDF: the server checks the first chunk against the type's signature.
    const data = Buffer.concat([Buffer.from("%PDF-1.7\n"), randomBytes(25 * CHUNK)]);
    const watched = watchedFetch();
    const blob = new Blob([data], { type: "application/pdf" });
    const file = await createFiles(contextFor({ apiKey: key }, watched.fetch)).upload(blob, { concurrency: 4 });
    expect(file).toMatchObject({ contentType: "application/pdf", size: BigInt(data.length), sha256: sha256(data) });
    expect([...watched.sent].sort((a, b) => a - b)).toEqual(Array.from({ length: 26 }, (_, i) => i + 1));
    expect(watched.load.peak).toBe(4);
    expect((await download(file.id)).equals(data)).toBe(true);
  });

  it("resumes an upload aborted half-way with its id, sending only the missing chunks", async () => {
    const data = randomBytes(12 * CHUNK + 5);
    const first = watchedFetch();
    const abort = new AbortController();
    let uploadId = "";
    let acked = 0;
    const interrupted = createFiles(contextFor({ apiKey: key }, first.fetch)).upload(data, {
      signal: abort.signal,
      concurrency: 1,
      onUploadId: (id) => {
        uploadId = id;
      },
      onProgress: ({ loaded }) => {
        if (loaded > 0 && ++acked === 5) abort.abort();
      },
    });
    await expect(interrupted).rejects.toSatisfy((e) => ConnectError.from(e).code === Code.Canceled);
    expect(first.sent).toEqual([1, 2, 3, 4, 5]);
    expect(await serverChunks(uploadId)).toEqual([1, 2, 3, 4, 5]);

    const second = watchedFetch();
    const progress: UploadProgress[] = [];
    const file = await createFiles(contextFor({ apiKey: key }, second.fetch)).upload(data, {
      uploadId,
      onProgress: (p) => progress.push(p),
    });
    expect([...second.sent].sort((a, b) => a - b)).toEqual([6, 7, 8, 9, 10, 11, 12, 13]);
    expect(progress[0]).toEqual({ loaded: 5 * CHUNK, total: data.length });
    expect(progress.at(-1)).toEqual({ loaded: data.length, total: data.length });
    expect((await download(file.id)).equals(data)).toBe(true);
  });

  it("retries a chunk whose request failed, and resumes after one that kept failing", async () => {
    const data = randomBytes(6 * CHUNK);
    let flaky = 0;
    const once = watchedFetch((n) => n === 2 && ++flaky === 1);
    const file = await createFiles(contextFor({ apiKey: key }, once.fetch)).upload(data);
    expect(once.sent.filter((n) => n === 2)).toHaveLength(2);
    expect((await download(file.id)).equals(data)).toBe(true);

    const broken = watchedFetch((n) => n === 4);
    let uploadId = "";
    const failed = createFiles(contextFor({ apiKey: key }, broken.fetch)).upload(data, {
      filename: "again.bin",
      onUploadId: (id) => {
        uploadId = id;
      },
    });
    await expect(failed).rejects.toSatisfy((e) => ConnectError.from(e).code === Code.Unavailable);
    expect(broken.sent.filter((n) => n === 4)).toHaveLength(4);
    expect(await serverChunks(uploadId)).not.toContain(4);

    const healed = watchedFetch();
    const resumed = await createFiles(contextFor({ apiKey: key }, healed.fetch)).upload(data, { uploadId });
    expect(healed.sent).toContain(4);
    expect(healed.sent.length).toBeLessThan(6);
    expect((await download(resumed.id)).equals(data)).toBe(true);
  });

  it("uploads as an end user into the token's conversation", async () => {
    const channel = await f.channel(key);
    const conversation = await f.conversation(key, channel.id);
    const token = await f.clientToken(key, conversation.id, "alice");
    const data = randomBytes(3 * CHUNK + 1);
    const file = await createFiles(contextFor({ token })).upload(data, { conversationId: conversation.id });
    expect((await download(file.id)).equals(data)).toBe(true);
  });

  it("rejects a wrong API key as Unauthenticated without sending a chunk", async () => {
    const watched = watchedFetch();
    const upload = createFiles(contextFor({ apiKey: "cvg_wrong" }, watched.fetch)).upload(randomBytes(CHUNK));
    await expect(upload).rejects.toSatisfy((e) => ConnectError.from(e).code === Code.Unauthenticated);
    expect(watched.sent).toEqual([]);
  });

  it("rejects a file over UPLOAD_MAX_BYTES as InvalidArgument without sending a chunk", async () => {
    const watched = watchedFetch();
    const upload = createFiles(contextFor({ apiKey: key }, watched.fetch)).upload(new Uint8Array(MAX_BYTES + 1));
    await expect(upload).rejects.toSatisfy((e) => {
      const error = ConnectError.from(e);
      return error.code === Code.InvalidArgument && error.rawMessage.startsWith("size:");
    });
    expect(watched.sent).toEqual([]);
  });

  it("refuses to resume an upload with data of another size", async () => {
    const data = randomBytes(4 * CHUNK);
    const abort = new AbortController();
    let uploadId = "";
    const interrupted = createFiles(contextFor({ apiKey: key })).upload(data, {
      signal: abort.signal,
      onUploadId: (id) => {
        uploadId = id;
        abort.abort();
      },
    });
    await expect(interrupted).rejects.toSatisfy((e) => ConnectError.from(e).code === Code.Canceled);
    const other = createFiles(contextFor({ apiKey: key })).upload(data.subarray(1), { uploadId });
    await expect(other).rejects.toSatisfy((e) => ConnectError.from(e).code === Code.InvalidArgument);
  });
});
