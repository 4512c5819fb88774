// Upload throughput: a file of --mb MiB (default 1 GiB) sent in 8 MiB chunks over loopback through the
// chunked API to local disk, --parallel chunks at a time; reports MB/s, the server's peak RSS growth
// (sampled every 50 ms), then the merge time of a 20-chunk upload after `complete`. The payload is one
// random 8 MiB buffer reused for every chunk, so the load generator holds no more than that.
import { randomBytes } from "node:crypto";
import http from "node:http";
import { Client, fmt, inPool, options } from "./lib.js";
import { startServer } from "./server.js";
import { mb, rssKb } from "./ws-lib.js";

const opts = options("upload", { mb: 1024, parallel: 4 });
const CHUNK = 8 * 1024 * 1024;
const [GOAL_MB_S, GOAL_RSS_MB, GOAL_MERGE_S] = [200, 64, 5];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const server = await startServer("services/host/main.ts");
const client = new Client(server.url, 16);
const agent = new http.Agent({ keepAlive: true, maxSockets: Math.max(1, opts.parallel) });
try {
  const admin = { authorization: `Bearer ${server.adminToken}` };
  const tenant = await client.json<{ api_key: string }>("POST", "/admin/v1/tenants", 201, admin, { name: "bench" });
  const headers = { "x-api-key": tenant.api_key };
  const payload = randomBytes(CHUNK);

  const putChunk = (uploadId: string, n: number, size: number) =>
    new Promise<void>((resolve, reject) => {
      const url = new URL(`/v1/files/upload/${uploadId}/${n}`, server.url);
      const req = http.request(
        url,
        {
          method: "PATCH",
          agent,
          headers: { ...headers, "content-type": "application/octet-stream", "content-length": size },
        },
        (res) => {
          res.resume();
          res.on("end", () =>
            res.statusCode === 200 ? resolve() : reject(new Error(`chunk ${n}: ${res.statusCode}`)),
          );
        },
      );
      req.on("error", reject);
      req.end(size === CHUNK ? payload : payload.subarray(0, size));
    });

  async function upload(bytes: number, name: string) {
    const init = { filename: name, size: bytes, content_type: "application/octet-stream" };
    const started = await client.json<{ upload_id: string; total_chunks: number }>(
      "POST",
      "/v1/files/initiate",
      201,
      headers,
      init,
    );
    return started;
  }

  const total = opts.mb * 1024 * 1024;
  const { upload_id: id, total_chunks: chunks } = await upload(total, "big.bin");
  const rssBefore = rssKb(server.pid);
  let peak = rssBefore;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peak = Math.max(peak, rssKb(server.pid));
      await sleep(50);
    }
  })();
  const start = performance.now();
  await inPool(chunks, Math.max(1, opts.parallel), (i) =>
    putChunk(id, i + 1, i + 1 < chunks ? CHUNK : total - CHUNK * (chunks - 1)),
  );
  const seconds = (performance.now() - start) / 1000;
  sampling = false;
  await sampler;
  const rate = total / 1024 / 1024 / seconds;
  const growth = (peak - rssBefore) / 1024;
  console.log(
    `\nuploaded ${opts.mb} MiB in ${chunks} chunks of 8 MiB (${opts.parallel} at a time) in ${fmt(seconds, 0, 2)} s`,
  );
  console.log(`throughput: ${fmt(rate, 0, 1)} MB/s (MiB/s) to local disk`);
  console.log(`server RSS: ${mb(rssBefore)} before, peak ${mb(peak)} → growth ${fmt(growth, 0, 1)} MB`);

  // Merge time: 20 chunks (160 MiB), from `complete` to COMPLETED.
  const small = await upload(20 * CHUNK, "twenty.bin");
  await inPool(20, Math.max(1, opts.parallel), (i) => putChunk(small.upload_id, i + 1, CHUNK));
  const mergeStart = performance.now();
  await client.json("POST", "/v1/files/complete", 202, headers, { upload_id: small.upload_id });
  let state = "MERGING";
  for (let i = 0; i < 1200 && state === "MERGING"; i++) {
    await sleep(25);
    state = (await client.json<{ status: string }>("GET", `/v1/files/upload/${small.upload_id}/status`, 200, headers))
      .status;
  }
  const merge = (performance.now() - mergeStart) / 1000;
  console.log(`merge of 20 chunks (160 MiB) after complete: ${fmt(merge, 0, 2)} s → ${state}`);
  console.log(
    `goals: ≥ ${GOAL_MB_S} MB/s ${rate >= GOAL_MB_S ? "met" : "NOT met"}; RSS growth < ${GOAL_RSS_MB} MB ${growth < GOAL_RSS_MB ? "met" : "NOT met"}; merge ≤ ${GOAL_MERGE_S} s ${merge <= GOAL_MERGE_S && state === "COMPLETED" ? "met" : "NOT met"}`,
  );
} finally {
  agent.destroy();
  client.agent.destroy();
  await server.stop();
}
