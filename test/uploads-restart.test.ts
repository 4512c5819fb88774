import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ADMIN_TOKEN, call, uploadOutcome } from "./helpers/app.js";
import { createTestDatabase } from "./helpers/database.js";
import { freePort, type ServiceProcess, spawnService } from "./helpers/process.js";

const CHUNK = 64 * 1024;
const running: ServiceProcess[] = [];
afterAll(async () => {
  for (const p of running) await p.stop("SIGKILL");
});

/** Bytes of chunk `n` being written in `dir` (local blob store: `<n>.<uuid>.tmp` until it is complete). */
function partialBytes(dir: string, n: number): number {
  if (!existsSync(dir)) return 0;
  const temp = readdirSync(dir).find((name) => name.startsWith(`${n}.`) && name.endsWith(".tmp"));
  return temp ? statSync(join(dir, temp)).size : 0;
}

describe("an upload across a crash", () => {
  it("keeps the chunks received before the process was killed mid-chunk and completes after restart", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "converger-upload-restart-"));
    try {
      const port = await freePort();
      const env = {
        ADMIN_TOKEN,
        DATABASE_URL: await createTestDatabase(),
        DATA_DIR: dataDir,
        PORT: String(port),
        GRPC_PORT: String(await freePort()),
        WS_PORT: String(await freePort()),
        UPLOAD_CHUNK_BYTES: String(CHUNK),
      };
      const base = `http://127.0.0.1:${port}`;
      const first = await spawnService(env, [], /^gateway /m);
      running.push(first);
      const tenant = await call(base, "POST", "/admin/v1/tenants", { token: ADMIN_TOKEN, body: { name: "crash" } });
      const key = tenant.body.api_key as string;
      const data = randomBytes(3 * CHUNK);
      const started = await call(base, "POST", "/v1/files/initiate", {
        key,
        body: { filename: "crash.bin", size: data.length, content_type: "application/octet-stream" },
      });
      const id = started.body.upload_id as string;
      const put = (n: number) =>
        fetch(`${base}/v1/files/upload/${id}/${n}`, {
          method: "PATCH",
          headers: { "x-api-key": key },
          body: data.subarray((n - 1) * CHUNK, n * CHUNK),
        });
      expect((await put(1)).status).toBe(200);
      expect((await put(3)).status).toBe(200);

      // Chunk 2 is half sent when the process dies.
      const partial = http.request(`${base}/v1/files/upload/${id}/2`, {
        method: "PATCH",
        headers: { "x-api-key": key, "content-length": CHUNK },
      });
      partial.on("error", () => undefined);
      partial.write(data.subarray(CHUNK, CHUNK + CHUNK / 2));
      // Killed once the server holds the half chunk (in its temporary file), not after a guessed time.
      await expect
        .poll(() => partialBytes(join(dataDir, "blobs", "uploads", id), 2), { timeout: 10_000 })
        .toBe(CHUNK / 2);
      await first.stop("SIGKILL");
      partial.destroy();

      const second = await spawnService(env, [], /^gateway /m);
      running.push(second);
      const status = await call(base, "GET", `/v1/files/upload/${id}/status`, { key });
      expect(status.body).toMatchObject({ status: "UPLOADING", chunks_received: [1, 3] });
      expect((await put(2)).status).toBe(200);
      expect((await call(base, "POST", "/v1/files/complete", { key, body: { upload_id: id } })).status).toBe(202);
      const final = await uploadOutcome(base, key, id);
      expect(final.status).toBe("COMPLETED");
      const content = await fetch(`${base}/v1/files/${final.file_id}/content`, { headers: { "x-api-key": key } });
      const digest = (b: Buffer) => createHash("sha256").update(b).digest("hex");
      expect(digest(Buffer.from(await content.arrayBuffer()))).toBe(digest(data));
      await second.stop();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 120_000);
});
