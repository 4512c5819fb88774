// End-to-end delivery: activities posted over REST at a steady rate, round-robin
// over C conversations of one webhook channel, reach a loopback webhook sink
// through outbox → event log → delivery worker → signed POST. Reports delivered
// per second and post→sink latency (the post's wall-clock send time is its text),
// and checks per-conversation seq order and duplicates at the sink.
// --kafka 1 runs the event log on a Kafka-protocol broker (librdkafka's mock
// cluster, scripts/kafka-mock/kafka-mock.ts) instead of in-process.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { type KafkaMock, startKafkaMock } from "../scripts/kafka-mock/kafka-mock.js";
import { Client, fmt, inPool, options, percentiles } from "./lib.js";
import { startServer } from "./server.js";
import { bump, tally, wallNow } from "./ws-lib.js";

const opts = options("delivery", { rate: 2_000, seconds: 10, conversations: 200, kafka: 0 });
const [GOAL_RATE, GOAL_P99_MS] = [2_000, 1_000];
const [TICK_MS, MAX_IN_FLIGHT, HTTP_SOCKETS, DRAIN_MS] = [10, 2_048, 64, 60_000];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// The webhook receiver: latency, order and duplicates per conversation.
const latencies: number[] = [];
const lastSeq = new Map<string, number>();
const seen = new Set<string>();
const problems = new Map<string, number>();
let [received, firstReceive, lastReceive] = [0, 0, 0];
const sink = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    const at = wallNow();
    res.writeHead(204).end();
    const { activity } = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
      activity: { id: string; conversation_id: string; seq: string; text: string };
    };
    if (seen.has(activity.id)) return bump(problems, "duplicate");
    seen.add(activity.id);
    const seq = Number(activity.seq);
    if (seq <= (lastSeq.get(activity.conversation_id) ?? 0)) bump(problems, "out of order");
    lastSeq.set(activity.conversation_id, seq);
    received++;
    firstReceive ||= at;
    lastReceive = at;
    latencies.push(at - Number(activity.text));
  });
});
await new Promise<void>((resolve) => sink.listen(0, "127.0.0.1", resolve));
const sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/hook`;

let kafka: KafkaMock | undefined;
if (opts.kafka) {
  kafka = await startKafkaMock({ brokers: 1 });
  Object.assign(process.env, {
    KAFKA_BROKERS: kafka.brokers.join(","),
    KAFKA_IDEMPOTENT: "false",
    KAFKA_SESSION_TIMEOUT_MS: "3000",
  });
}
process.env.WEBHOOK_ALLOW_PRIVATE = "true";
const server = await startServer("services/host/main.ts");
const client = new Client(server.url, HTTP_SOCKETS);
try {
  console.log(`event log: ${kafka ? `Kafka (mock cluster ${kafka.brokers.join(",")})` : "in-process"}`);
  const admin = { authorization: `Bearer ${server.adminToken}` };
  const tenant = await client.json<{ api_key: string }>("POST", "/admin/v1/tenants", 201, admin, { name: "bench" });
  const headers = { "x-api-key": tenant.api_key };
  const channelBody = { name: "sink", type: "webhook", config: { url: sinkUrl } };
  const channel = await client.json<{ id: string }>("POST", "/v1/channels", 201, headers, channelBody);
  const conversations = Math.max(1, Math.floor(opts.conversations));
  const ids: string[] = [];
  await inPool(conversations, 16, async (i) => {
    ids[i] = (
      await client.json<{ id: string }>("POST", "/v1/conversations", 201, headers, { channel_id: channel.id })
    ).id;
  });
  // Warm-up: one delivery end to end (consumer group joined, adapter path hot).
  const warm = JSON.stringify({ type: "message", text: String(wallNow()), from: { id: "bench" } });
  await client.send(
    "POST",
    `/v1/conversations/${ids[0]}/activities`,
    { ...headers, "content-type": "application/json" },
    warm,
  );
  for (let i = 0; i < 600 && received === 0; i++) await sleep(100);
  if (received === 0) throw new Error("the warm-up activity never reached the sink");
  [received, firstReceive, lastReceive] = [0, 0, 0];
  latencies.length = 0;

  const failures = new Map<string, number>();
  let [issued, ok, inFlight] = [0, 0, 0];
  const post = (index: number) => {
    const body = JSON.stringify({ type: "message", text: String(wallNow()), from: { id: "bench" } });
    const all = { ...headers, "content-type": "application/json", "content-length": Buffer.byteLength(body) };
    inFlight++;
    void client
      .send("POST", `/v1/conversations/${ids[index]}/activities`, all, body)
      .then(
        (reply) => (reply.status === 201 ? ok++ : bump(failures, String(reply.status))),
        (error: NodeJS.ErrnoException) => bump(failures, error.code ?? error.message),
      )
      .finally(() => inFlight--);
  };
  const start = performance.now();
  const until = start + opts.seconds * 1000;
  for (let tick = 1; tick <= opts.seconds * (1000 / TICK_MS) * 2 && performance.now() < until; tick++) {
    const due = Math.floor(((performance.now() - start) / 1000) * opts.rate) - issued;
    for (let k = 0; k < due && inFlight < MAX_IN_FLIGHT; k++) post(issued++ % conversations);
    await sleep(Math.max(0, start + tick * TICK_MS - performance.now()));
  }
  for (let i = 0; i < 3000 && inFlight > 0; i++) await sleep(10);
  for (let i = 0; i < DRAIN_MS / 100 && received < ok; i++) await sleep(100);

  const p = percentiles(latencies);
  const rate = received / Math.max(0.001, (lastReceive - firstReceive) / 1000);
  console.log(`\nposted: ${issued} issued over ${opts.seconds} s at ${opts.rate}/s target, ${ok} stored (201)`);
  console.log(`post failures: ${tally(failures)}`);
  console.log(`delivered to the sink: ${received} of ${ok}, ${rate.toFixed(0)} deliveries/s (first to last receipt)`);
  console.log(
    `latency post→sink ms: p50 ${fmt(p.p50, 0)}  p95 ${fmt(p.p95, 0)}  p99 ${fmt(p.p99, 0)}  max ${fmt(p.max, 0)}`,
  );
  console.log(
    `order and duplicates at the sink: ${tally(problems) === "none" ? "in order, none duplicated" : tally(problems)}`,
  );
  const met = rate >= GOAL_RATE * 0.98 && p.p99 < GOAL_P99_MS && received >= ok && opts.rate >= GOAL_RATE;
  console.log(
    `goal ≥ ${GOAL_RATE.toLocaleString("en")} deliveries/s with p99 < ${GOAL_P99_MS} ms: ${met ? "met" : "NOT met"}`,
  );
} finally {
  client.agent.destroy();
  await server.stop();
  await kafka?.stop();
  sink.close();
}
