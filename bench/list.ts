// Conversation-list latency: one tenant with many conversations (1–3 activities
// each), then sequential GET /v1/conversations with limit=50, limit=100 and a
// second page via next_cursor, round-robin, after a warm-up. Server: bench/server.ts.
import { Client, createTenant, fmt, inPool, options, percentiles } from "./lib.js";
import { startServer } from "./server.js";

const opts = options("list", { conversations: 1000, requests: 500, seconds: 10, warmup: 50, concurrency: 32 });
const GOAL_P95_MS = 10;
const server = await startServer("services/host/main.ts");
const client = new Client(server.url, Math.max(1, opts.concurrency));
try {
  const { headers, channelId } = await createTenant(client, server);
  const setupStart = performance.now();
  await inPool(opts.conversations, opts.concurrency, async (i) => {
    const body = { channel_id: channelId };
    const { id } = await client.json<{ id: string }>("POST", "/v1/conversations", 201, headers, body);
    for (let a = 0; a < 1 + (i % 3); a++) {
      const activity = { type: "message", text: `hello ${a}`, from: { id: "bench" } };
      await client.json("POST", `/v1/conversations/${id}/activities`, 201, headers, activity);
    }
  });
  const setupSeconds = (performance.now() - setupStart) / 1000;
  console.log(`setup: ${opts.conversations} conversations with 1–3 activities each in ${setupSeconds.toFixed(1)} s\n`);

  type Page = { conversations: unknown[]; next_cursor?: string };
  const first = await client.json<Page>("GET", "/v1/conversations?limit=50", 200, headers);
  const cursor = encodeURIComponent(first.next_cursor ?? "");
  const n = Math.floor(opts.conversations);
  const kinds = [
    { name: "limit=50", path: "/v1/conversations?limit=50", size: Math.min(50, n) },
    { name: "limit=100", path: "/v1/conversations?limit=100", size: Math.min(100, n) },
    { name: "page 2", path: `/v1/conversations?limit=50&cursor=${cursor}`, size: Math.min(50, n - 50) },
  ].filter((kind) => kind.size > 0);
  const latencies = kinds.map((): number[] => []);
  let errors = 0;

  const measure = async (count: number, record: boolean) => {
    const deadline = performance.now() + opts.seconds * 1000;
    const started = performance.now();
    let done = 0;
    for (; done < count && performance.now() < deadline; done++) {
      const k = done % kinds.length;
      const kind = kinds[k]!;
      const start = performance.now();
      const reply = await client.send("GET", kind.path, headers);
      const elapsed = performance.now() - start;
      const ok = reply.status === 200 && (JSON.parse(reply.body) as Page).conversations.length === kind.size;
      if (!ok) errors++;
      else if (record) latencies[k]!.push(elapsed);
      if (!ok && !record) throw new Error(`${kind.path}: ${reply.status} ${reply.body.slice(0, 300)}`);
    }
    return { done, seconds: (performance.now() - started) / 1000 };
  };
  await measure(opts.warmup, false);
  const run = await measure(opts.requests, true);

  const titles = ["n", "p50 ms", "p95 ms", "p99 ms", "max ms"].map((t, i) => t.padStart(i === 0 ? 6 : 9));
  console.log(`${"request".padEnd(12)}${titles.join("")}`);
  const line = (name: string, samples: number[]) => {
    const p = percentiles(samples);
    console.log(
      `${name.padEnd(12)}${String(p.n).padStart(6)}${[p.p50, p.p95, p.p99, p.max].map((v) => fmt(v)).join("")}`,
    );
    return p;
  };
  kinds.forEach((kind, k) => {
    line(kind.name, latencies[k]!);
  });
  const all = line("all", latencies.flat());
  console.log(
    `\n${run.done} requests in ${run.seconds.toFixed(2)} s: ${(run.done / run.seconds).toFixed(1)} req/s, ${errors} errors`,
  );
  const met = all.p95 < GOAL_P95_MS ? "met" : "NOT met";
  console.log(`goal: p95 < ${GOAL_P95_MS} ms (all requests) — ${met} (p95 ${all.p95.toFixed(2)} ms)`);
} finally {
  client.agent.destroy();
  await server.stop();
}
