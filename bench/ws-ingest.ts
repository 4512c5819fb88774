// Ingest over the WebSocket edge vs REST on the same server. Each socket is a distinct user with its own
// conversation (minted with the channel secret), so per-conversation ordering never couples sockets. A socket
// publishes ≤ perSocketRate frames/s (paced, and ≤ that many in any sliding second: the edge closes floods
// over 50/s) with ≤ `window` unacked; an ack means durable. Then REST into the same conversations.
import type WebSocket from "ws";
import { Client, createTenant, fmt, inPool, options, percentiles } from "./lib.js";
import { startServer } from "./server.js";
import { bump, closeAll, mintToken, openSocket, tally } from "./ws-lib.js";

const opts = options("ws-ingest", { sockets: 200, seconds: 10, perSocketRate: 40, window: 8, restClients: 64 });
const count = Math.max(1, Math.floor(opts.sockets));
const rate = Math.max(1, Math.floor(opts.perSocketRate));
const window = Math.max(1, Math.floor(opts.window));
const [GOAL_RATE, GOAL_RATIO, TICK_MS, DRAIN_MS, MAX_REST_REQUESTS] = [20_000, 2, 10, 10_000, 10_000_000];
const REST_BODY = JSON.stringify({ type: "message", text: "hello", from: { id: "bench" } });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
console.log(`offered WS load ≤ sockets × perSocketRate = ${count * rate}/s`);
if (count * rate < GOAL_RATE) console.log(`  (below the ${GOAL_RATE}/s goal: it needs ≥ ${GOAL_RATE / rate} sockets)`);

interface Sock {
  ws?: WebSocket;
  conversationId: string;
  sent: number;
  acked: number;
  pending: Map<string, number>;
  /** Send times of the last `rate` frames (ring), for the sliding-second cap. */
  ring: Float64Array;
}

const server = await startServer("services/host/main.ts");
const client = new Client(server.url, Math.max(32, opts.restClients));
const socks: Sock[] = [];
let closing = false;
try {
  if (!server.edgeUrl) throw new Error("the server printed no `edge ws://…` line");
  const { headers, secret } = await createTenant(client, server);
  const latencies: number[] = [];
  const errors = new Map<string, number>();
  const closes = new Map<string, number>();
  let [measureFrom, until, lastAck] = [Number.POSITIVE_INFINITY, 0, 0];
  await inPool(count, 32, async (i) => {
    const { token, conversation_id } = await mintToken(client, secret, `w${i}`);
    const sock: Sock = {
      conversationId: conversation_id,
      sent: 0,
      acked: 0,
      pending: new Map(),
      ring: new Float64Array(rate),
    };
    sock.ring.fill(Number.NEGATIVE_INFINITY);
    socks[i] = sock;
    sock.ws = await openSocket(`${server.edgeUrl}/ws?token=${token}`, (text) => {
      const frame = JSON.parse(text) as { type?: string; client_id?: string; code?: string };
      const sentAt = frame.client_id === undefined ? undefined : sock.pending.get(frame.client_id);
      if (frame.type === "error") bump(errors, frame.code ?? "?");
      if (sentAt === undefined || (frame.type !== "ack" && frame.type !== "error")) return;
      sock.pending.delete(frame.client_id as string);
      if (frame.type !== "ack") return;
      sock.acked++;
      const now = performance.now();
      if (sentAt < measureFrom || sentAt >= until) return;
      latencies.push(now - sentAt);
      lastAck = Math.max(lastAck, now);
    });
    sock.ws.on("close", (code) => closing || bump(closes, String(code)));
  });
  console.log(`${count} sockets open, one user and one conversation each`);

  // Publishing: 10 ms ticks; socket i starts i/count of an interval late so the sends spread out.
  const start = performance.now();
  [measureFrom, until] = [start, start + opts.seconds * 1000];
  const interval = 1000 / rate;
  for (let tick = 1; tick <= opts.seconds * (1000 / TICK_MS) * 2 && performance.now() < until; tick++) {
    const now = performance.now();
    for (const [i, sock] of socks.entries()) {
      const due = Math.floor((now - start - (i / count) * interval) / interval) + 1;
      for (let k = 0; k < window && sock.sent < due && sock.pending.size < window; k++) {
        if (sock.ring[sock.sent % rate]! > now - 1000) break; // `rate` frames in the last second already
        const clientId = `s${i}-${sock.sent}`;
        sock.ring[sock.sent++ % rate] = now;
        sock.pending.set(clientId, now);
        sock.ws?.send(JSON.stringify({ type: "activity", client_id: clientId, text: "hello" }));
      }
    }
    await sleep(Math.max(0, start + tick * TICK_MS - performance.now()));
  }
  const outstanding = () => socks.reduce((n, s) => n + s.pending.size, 0);
  for (let i = 0; i < DRAIN_MS / TICK_MS && outstanding() > 0; i++) await sleep(TICK_MS);
  const p = percentiles(latencies);
  const wsRate = p.n / ((Math.max(lastAck, start + 1) - start) / 1000);
  const sent = socks.reduce((n, s) => n + s.sent, 0);
  console.log(
    `\nWS: ${sent} frames sent, ${socks.reduce((n, s) => n + s.acked, 0)} acked, ${outstanding()} unanswered`,
  );
  console.log(`WS durable acks/s ${fmt(wsRate, 0, 0)}  (${p.n} acks of frames sent in the ${opts.seconds} s window)`);
  console.log(`ack latency ms: p50 ${fmt(p.p50, 0)}  p95 ${fmt(p.p95, 0)}  p99 ${fmt(p.p99, 0)}  max ${fmt(p.max, 0)}`);
  console.log(`error frames by code: ${tally(errors)}; unexpected closes: ${tally(closes)}`);

  // Stored = acked: seqs 1..n gap-free and acked ≤ n ≤ sent, for 3 sockets' conversations.
  const picks = [...new Set([0, Math.floor(count / 2), count - 1])];
  const checks: string[] = [];
  for (const index of picks) {
    const sock = socks[index]!;
    let n = 0;
    for (let page = 0; page < 1000; page++) {
      const path = `/v1/conversations/${sock.conversationId}/activities?limit=1000&watermark=${n}`;
      const { activities } = await client.json<{ activities: { seq: string }[] }>("GET", path, 200, headers);
      for (const { seq } of activities) if (Number(seq) !== ++n) checks.push(`seq ${seq} where ${n} was expected`);
      if (activities.length < 1000) break;
    }
    if (n < sock.acked || n > sock.sent)
      checks.push(`socket ${index}: ${n} stored, ${sock.acked} acked, ${sock.sent} sent`);
  }
  if (checks.length > 0) process.exitCode = 1;
  console.log(checks.length ? `STORE CHECK FAILED: ${checks.slice(0, 5).join("; ")}` : "store check ok (3 sockets)");

  // REST on the same server, same conversations, same duration.
  const restHeaders = {
    ...headers,
    "content-type": "application/json",
    "content-length": Buffer.byteLength(REST_BODY),
  };
  const restFailures = new Map<string, number>();
  const restStart = performance.now();
  const restUntil = restStart + opts.seconds * 1000;
  let [restOk, next, restLast] = [0, 0, restStart];
  await inPool(opts.restClients, opts.restClients, async () => {
    for (let i = 0; i < MAX_REST_REQUESTS && performance.now() < restUntil; i++) {
      const path = `/v1/conversations/${socks[next++ % count]!.conversationId}/activities`;
      const status = await client.send("POST", path, restHeaders, REST_BODY).then(
        (reply) => String(reply.status),
        (error: NodeJS.ErrnoException) => error.code ?? "error",
      );
      if (status === "201") [restOk, restLast] = [restOk + 1, performance.now()];
      else bump(restFailures, status);
      if (!/^\d+$/.test(status)) await sleep(10);
    }
  });
  const restRate = restOk / ((restLast - restStart) / 1000);
  console.log(
    `REST (${opts.restClients} keep-alive clients): ${fmt(restRate, 0, 0)} ok/s, failures ${tally(restFailures)}`,
  );
  console.log(`WS/REST: ${(wsRate / restRate).toFixed(2)}×`);
  const met = wsRate >= GOAL_RATE && wsRate >= GOAL_RATIO * restRate;
  console.log(`goal ≥ ${GOAL_RATE.toLocaleString("en")}/s and ≥ ${GOAL_RATIO}× REST: ${met ? "met" : "NOT met"}`);
} finally {
  closing = true;
  await closeAll(socks.flatMap((s) => (s.ws ? [s.ws] : [])));
  client.agent.destroy();
  await server.stop();
}
