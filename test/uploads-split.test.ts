import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as tus from "tus-js-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UploadsService } from "../gen/converger/v1/uploads_pb.js";
import { INTERNAL_HEADER, internalTokenFrom } from "../services/common/access/internal.js";
import { ADMIN_TOKEN, call, fixtures, uploadOutcome } from "./helpers/app.js";
import { createTestDatabase } from "./helpers/database.js";
import { freePort, type ServiceProcess, spawnService } from "./helpers/process.js";

const CHUNK = 1024 * 1024;
// Set on the uploads process only: the gateway must learn it from there.
const MAX_UPLOAD = 4 * CHUNK;
const running: ServiceProcess[] = [];
const dataDirs: string[] = [];
let base: string;
let uploadsGrpc: string;
let key: string;
let otherKey: string;

/** Three OS processes: conversations+auth, uploads (with its own blobs), and a gateway holding neither. */
beforeAll(async () => {
  const databaseUrl = await createTestDatabase();
  const dataDir = () => {
    const dir = mkdtempSync(join(tmpdir(), "converger-split-"));
    dataDirs.push(dir);
    return dir;
  };
  const start = async (env: Record<string, string>, services: string, readyLine?: RegExp) => {
    const p = await spawnService({ ADMIN_TOKEN, DATA_DIR: dataDir(), ...env }, [`--services=${services}`], readyLine);
    running.push(p);
    return p;
  };
  const directoryPort = await freePort();
  const uploadsPort = await freePort();
  const gatewayPort = await freePort();
  const directory = `http://127.0.0.1:${directoryPort}`;
  await start({ DATABASE_URL: databaseUrl, GRPC_PORT: String(directoryPort) }, "conversations,auth");
  await start(
    {
      DATABASE_URL: databaseUrl,
      GRPC_PORT: String(uploadsPort),
      GRPC_UPSTREAM: directory,
      UPLOAD_CHUNK_BYTES: String(CHUNK),
      UPLOAD_MAX_BYTES: String(MAX_UPLOAD),
    },
    "uploads",
  );
  await start(
    {
      PORT: String(gatewayPort),
      GRPC_PORT: String(await freePort()),
      GRPC_UPSTREAM: directory,
      UPLOADS_GRPC_URL: `http://127.0.0.1:${uploadsPort}`,
    },
    "gateway",
    /^gateway /m,
  );
  base = `http://127.0.0.1:${gatewayPort}`;
  uploadsGrpc = `http://127.0.0.1:${uploadsPort}`;
  key = (await fixtures(base).tenant("Split")).key;
  otherKey = (await fixtures(base).tenant("Split other")).key;
}, 120_000);

afterAll(async () => {
  await Promise.all(running.map((p) => p.stop()));
  for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
});

const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");
const status = async (uploadId: string) =>
  (await call(base, "GET", `/v1/files/upload/${uploadId}/status`, { key })).body;

function putChunk(
  uploadId: string,
  n: number,
  body: Buffer | ReadableStream,
  headers: Record<string, string> = { "x-api-key": key },
) {
  const streamed = body instanceof ReadableStream ? { duplex: "half" as const } : {};
  return fetch(`${base}/v1/files/upload/${uploadId}/${n}`, { method: "PATCH", headers, body, ...streamed });
}

async function download(fileId: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}/v1/files/${fileId}/content`, { headers: { "x-api-key": key, ...headers } });
  return { res, bytes: Buffer.from(await res.arrayBuffer()) };
}

async function initiate(size: number) {
  const started = await call(base, "POST", "/v1/files/initiate", {
    key,
    body: { filename: "split.bin", size, content_type: "application/octet-stream" },
  });
  expect(started.status).toBe(201);
  return started.body as { upload_id: string; total_chunks: number };
}

/** A body the client streams without a Content-Length (chunked transfer encoding). */
function streamOf(data: Buffer): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      for (let at = 0; at < data.length; at += 64 * 1024) controller.enqueue(data.subarray(at, at + 64 * 1024));
      controller.close();
    },
  });
}

describe("uploads with the gateway and the uploads service in separate processes", () => {
  it("takes a tus upload from tus-js-client and serves the file back, whole and by range", async () => {
    const data = randomBytes(3 * CHUNK + 4321);
    const url = await new Promise<string>((resolve, reject) => {
      const upload = new tus.Upload(data, {
        endpoint: `${base}/v1/tus/`,
        headers: { "x-api-key": key },
        chunkSize: CHUNK,
        metadata: { filename: "tus.bin", filetype: "application/octet-stream" },
        onSuccess: () => resolve(upload.url ?? ""),
        onError: reject,
      });
      upload.start();
    });
    const done = await uploadOutcome(base, key, url.split("/").pop() as string);
    expect(done).toMatchObject({ status: "COMPLETED", percent: 100 });
    const whole = await download(done.file_id);
    expect(whole.res.status).toBe(200);
    expect(sha256(whole.bytes)).toBe(sha256(data));
    const part = await download(done.file_id, { range: "bytes=1000000-2999999" });
    expect(part.res.status).toBe(206);
    expect(part.res.headers.get("content-range")).toBe(`bytes 1000000-2999999/${data.length}`);
    expect(part.bytes.equals(data.subarray(1_000_000, 3_000_000))).toBe(true);
  });

  it("takes a chunked upload in any order, one chunk streamed without Content-Length, and serves it back", async () => {
    const data = randomBytes(2 * CHUNK + 777);
    const { upload_id: id, total_chunks: total } = await initiate(data.length);
    expect(total).toBe(3);
    const chunk = (n: number) => data.subarray((n - 1) * CHUNK, n * CHUNK);
    expect((await putChunk(id, 3, chunk(3))).status).toBe(200);
    expect((await putChunk(id, 1, streamOf(chunk(1)))).status).toBe(200);
    const last = await putChunk(id, 2, chunk(2));
    expect(await last.json()).toEqual({ chunk_number: 2, chunks_received: [1, 2, 3] });
    expect((await call(base, "POST", "/v1/files/complete", { key, body: { upload_id: id } })).status).toBe(202);
    const done = await uploadOutcome(base, key, id);
    expect(done.status).toBe("COMPLETED");
    const whole = await download(done.file_id);
    expect(whole.res.headers.get("content-disposition")).toMatch(/^attachment; filename="split.bin"/);
    expect(sha256(whole.bytes)).toBe(sha256(data));
  });

  it("checks the caller's credentials before any byte reaches the uploads service", async () => {
    const data = randomBytes(CHUNK);
    const { upload_id: id } = await initiate(data.length);
    expect((await putChunk(id, 1, data, { "x-api-key": `cvg_${"x".repeat(43)}` })).status).toBe(401);
    expect((await putChunk(id, 1, data, {})).status).toBe(401);
    expect((await putChunk(id, 1, data, { "x-api-key": otherKey })).status).toBe(404);
    expect((await status(id)).chunks_received).toEqual([]);

    const created = await fetch(`${base}/v1/tus/`, {
      method: "POST",
      headers: { "tus-resumable": "1.0.0", "x-api-key": key, "upload-length": "10" },
    });
    const path = new URL(created.headers.get("location") as string, base).pathname;
    const patch = (headers: Record<string, string>) =>
      fetch(`${base}${path}`, {
        method: "PATCH",
        headers: {
          "tus-resumable": "1.0.0",
          "content-type": "application/offset+octet-stream",
          "upload-offset": "0",
          ...headers,
        },
        body: Buffer.alloc(10),
      });
    expect((await patch({ "x-api-key": "wrong" })).status).toBe(401);
    expect((await patch({ "x-api-key": otherKey })).status).toBe(404);
    const head = await fetch(`${base}${path}`, {
      method: "HEAD",
      headers: { "tus-resumable": "1.0.0", "x-api-key": key },
    });
    expect(head.headers.get("upload-offset")).toBe("0");

    const file = randomBytes(100);
    const { upload_id: small } = await initiate(file.length);
    expect((await putChunk(small, 1, file)).status).toBe(200);
    await call(base, "POST", "/v1/files/complete", { key, body: { upload_id: small } });
    const { file_id: fileId } = await uploadOutcome(base, key, small);
    expect((await download(fileId, { "x-api-key": otherKey })).res.status).toBe(404);
    expect((await download(fileId, { "x-api-key": `cvg_${"y".repeat(43)}` })).res.status).toBe(401);
    expect(sha256((await download(fileId)).bytes)).toBe(sha256(file));
  });

  it("refuses what is too big: past the uploads service's limit, and a chunk longer than its size", async () => {
    const options = await fetch(`${base}/v1/tus/`, { method: "OPTIONS" });
    expect(options.headers.get("tus-max-size")).toBe(String(MAX_UPLOAD));
    const tooLong = await fetch(`${base}/v1/tus/`, {
      method: "POST",
      headers: { "tus-resumable": "1.0.0", "x-api-key": key, "upload-length": String(MAX_UPLOAD + 1) },
    });
    expect(tooLong.status).toBe(413);

    const data = randomBytes(CHUNK + 10);
    const { upload_id: id } = await initiate(data.length);
    const declared = await putChunk(id, 1, data.subarray(0, CHUNK + 1));
    expect(declared.status).toBe(400);
    // Without Content-Length only the uploads service, counting the streamed bytes, can tell.
    const streamed = await putChunk(id, 1, streamOf(data.subarray(0, CHUNK + 5)));
    expect(streamed.status).toBe(400);
    expect(((await streamed.json()) as { message: string }).message).toBe(`chunk 1 is longer than ${CHUNK} bytes`);
    expect((await status(id)).chunks_received).toEqual([]);
    expect((await putChunk(id, 1, data.subarray(0, CHUNK))).status).toBe(200);
  });

  it("refuses the byte-carrying RPCs to anyone but our own services", async () => {
    const readFile = async (baseUrl: string, headers: Record<string, string>) => {
      const client = createClient(UploadsService, createGrpcTransport({ baseUrl }));
      try {
        for await (const _ of client.readFile({ fileId: "00000000-0000-4000-8000-000000000000" }, { headers })) break;
        return "answered";
      } catch (error) {
        return Code[ConnectError.from(error).code];
      }
    };
    const internal = { [INTERNAL_HEADER]: internalTokenFrom(undefined, ADMIN_TOKEN) };
    expect(await readFile(uploadsGrpc, internal)).toBe("NotFound");
    expect(await readFile(uploadsGrpc, { "x-api-key": key })).toBe("PermissionDenied");
    expect(await readFile(uploadsGrpc, { [INTERNAL_HEADER]: "forged" })).toBe("Unauthenticated");
    // The gateway never passes the internal token on: from outside, it is no credential at all.
    expect(await readFile(base, internal)).toBe("Unauthenticated");
    expect(await readFile(base, { "x-api-key": key })).toBe("PermissionDenied");
  });
});
