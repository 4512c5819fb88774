// Ingest throughput: N keep-alive clients post activities round-robin over M
// conversations for T seconds (after a warm-up), first against Converger, then
// the same load against bench/bare-server.ts (the ceiling). Servers: bench/server.ts.
import type { OutgoingHttpHeaders } from "node:http";
import { Client, createTenant, fmt, inPool, options, percentiles } from "./lib.js";
import { type Server, startServer } from "./server.js";

const opts = options("ingest", { clients: 64, conversations: 100, seconds: 10, warmup: 2 });
const clients = Math.max(1, Math.floor(opts.clients));
const conversations = Math.max(1, Math.floor(opts.conversations));
const MAX_REQUESTS_PER_CLIENT = 10_000_000;
const BODY = JSON.stringify({ type: "message", text: "hello", from: { id: "bench" } });
console.log(`load generator: this process, node:http Agent keepAlive maxSockets=${clients}\n`);

interface Result {
  latencies: number[];
  failures: Map<string, number>;
  elapsedMs: number;
  acked: number[];
  sent: number[];
}

/** The client loop both targets get: same paths, headers, body and code. Latencies of 201s after the warm-up. */
async function runLoad(client: Client, paths: string[], apiHeaders: OutgoingHttpHeaders): Promise<Result> {
  const headers = { ...apiHeaders, "content-type": "application/json", "content-length": Buffer.byteLength(BODY) };
  const result: Result = { latencies: [], failures: new Map(), elapsedMs: 0, acked: [], sent: [] };
  result.acked = paths.map(() => 0);
  result.sent = paths.map(() => 0);
  const measureFrom = performance.now() + opts.warmup * 1000;
  const until = measureFrom + opts.seconds * 1000;
  let next = 0;
  let lastEnd = measureFrom;
  const loop = async () => {
    for (let i = 0; i < MAX_REQUESTS_PER_CLIENT; i++) {
      const start = performance.now();
      if (start >= until) return;
      const index = next++ % paths.length;
      result.sent[index]!++;
      let outcome: string;
      try {
        outcome = String((await client.send("POST", paths[index]!, headers, BODY)).status);
      } catch (error) {
        outcome = (error as NodeJS.ErrnoException).code ?? String(error);
      }
      const end = performance.now();
      if (outcome === "201") result.acked[index]!++;
      if (start < measureFrom) continue;
      lastEnd = Math.max(lastEnd, end);
      if (outcome === "201") result.latencies.push(end - start);
      else result.failures.set(outcome, (result.failures.get(outcome) ?? 0) + 1);
      if (!/^\d+$/.test(outcome)) await new Promise((r) => setTimeout(r, 10)); // no hot spin on a dead socket
    }
  };
  await Promise.all(Array.from({ length: clients }, loop));
  result.elapsedMs = lastEnd - measureFrom;
  return result;
}

function report(name: string, result: Result): number {
  const p = percentiles(result.latencies);
  const rate = p.n / (result.elapsedMs / 1000);
  const errors = [...result.failures.values()].reduce((a, b) => a + b, 0);
  const detail = [...result.failures].map(([k, v]) => `${k}×${v}`).join(" ");
  const cells = [fmt(rate, 11, 1), fmt(p.p50), fmt(p.p95), fmt(p.p99), fmt(p.max), String(errors).padStart(8)];
  console.log(`${name.padEnd(10)}${cells.join("")}  ${detail}`.trimEnd());
  return rate;
}

/** Seqs of 3 conversations must be 1..n without gaps, with acked ≤ n ≤ sent. */
async function orderCheck(client: Client, headers: OutgoingHttpHeaders, ids: string[], result: Result) {
  const picks = [...new Set([0, Math.floor(ids.length / 2), ids.length - 1])];
  let total = 0;
  for (const index of picks) {
    const id = ids[index];
    let n = 0;
    for (let page = 0; page < 10_000; page++) {
      const path = `/v1/conversations/${id}/activities?limit=1000&watermark=${n}`;
      const { activities } = await client.json<{ activities: { seq: string }[] }>("GET", path, 200, headers);
      for (const { seq } of activities) {
        if (Number(seq) !== ++n) throw new Error(`conversation ${id}: seq ${seq} where ${n} was expected`);
      }
      if (activities.length < 1000) break;
    }
    const [acked = 0, sent = 0] = [result.acked[index], result.sent[index]];
    if (n < acked || n > sent) throw new Error(`conversation ${id}: ${n} stored, ${acked} acked, ${sent} sent`);
    total += n;
  }
  return `order check ok (${picks.length} conversations, ${total} activities, seqs 1..n gap-free, acked ≤ n ≤ sent)`;
}

async function withServer<T>(script: string, run: (server: Server, client: Client) => Promise<T>): Promise<T> {
  const server = await startServer(script);
  const client = new Client(server.url, clients);
  try {
    return await run(server, client);
  } finally {
    client.agent.destroy();
    await server.stop();
  }
}

const titles = ["ok/s".padStart(11), ...["p50", "p95", "p99", "max"].map((t) => `${t} ms`.padStart(9)), "  errors"];
console.log(`${"target".padEnd(10)}${titles.join("")}`);
let checked = "";
const converger = await withServer("services/host/main.ts", async (server, client) => {
  const { headers, channelId } = await createTenant(client, server);
  const ids: string[] = [];
  await inPool(conversations, 16, async (i) => {
    const body = { channel_id: channelId };
    ids[i] = (await client.json<{ id: string }>("POST", "/v1/conversations", 201, headers, body)).id;
  });
  const result = await runLoad(
    client,
    ids.map((id) => `/v1/conversations/${id}/activities`),
    headers,
  );
  checked = await orderCheck(client, headers, ids, result).catch((error: unknown) => {
    process.exitCode = 1;
    return `ORDER CHECK FAILED: ${(error as Error).message}`;
  });
  return report("converger", result);
});
const bare = await withServer("bench/bare-server.ts", async (_server, client) => {
  const paths = Array.from({ length: conversations }, (_, i) => `/v1/conversations/${i}/activities`);
  return report("bare", await runLoad(client, paths, { "x-api-key": "bench" }));
});
console.log(`converger/bare: ${((converger / bare) * 100).toFixed(1)} %`);
(process.exitCode ? console.error : console.log)(checked);
