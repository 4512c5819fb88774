// Fan-out latency: S subscribers (distinct users, one socket each) spread over C
// conversations on the edge; REST posts at a steady rate, round-robin over the
// conversations, for T seconds. Each post carries its send time (wall-clock ms)
// as its text; every subscriber records receive time − send time per activity.
import type WebSocket from "ws";
import { Client, createTenant, fmt, inPool, options, percentiles } from "./lib.js";
import { startServer } from "./server.js";
import { bump, closeAll, fileLimit, mb, mintToken, openSocket, rssKb, tally, wallNow } from "./ws-lib.js";

const opts = options("fanout", { subscribers: 10_000, conversations: 1_000, rate: 2_000, seconds: 10 });
const conversations = Math.max(1, Math.floor(opts.conversations));
const perConversation = Math.max(1, Math.floor(opts.subscribers / conversations));
const subscribers = perConversation * conversations;
const [GOAL_P99_MS, GOAL_RATE] = [50, 2_000];
const [MINT_CONCURRENCY, OPEN_CONCURRENCY, HTTP_SOCKETS] = [32, 200, 64];
const [TICK_MS, MAX_IN_FLIGHT, SETTLE_MS, DRAIN_MS] = [10, 2_048, 30_000, 5_000];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const elapsed = (from: number) => `${((performance.now() - from) / 1000).toFixed(1)} s`;

const limit = fileLimit("self");
const cap = Math.min(subscribers, limit - 500);
console.log(`client: open-file limit ${limit} (ulimit -n); sockets attempted ${cap} of ${subscribers}`);
if (cap < subscribers) console.log(`NOTE: ${subscribers} sockets exceed this process's file limit − 500; capped`);

const server = await startServer("services/host/main.ts");
const client = new Client(server.url, HTTP_SOCKETS);
const sockets: WebSocket[] = [];
let closing = false;
try {
  if (!server.edgeUrl) throw new Error("the server printed no `edge ws://…` line");
  console.log(`server pid ${server.pid}, open-file limit ${fileLimit(server.pid)}, edge ${server.edgeUrl}`);
  const { headers, channelId, secret } = await createTenant(client, server);
  const ids: string[] = [];
  await inPool(conversations, 16, async (i) => {
    const body = { channel_id: channelId };
    ids[i] = (await client.json<{ id: string }>("POST", "/v1/conversations", 201, headers, body)).id;
  });
  let started = performance.now();
  const tokens: string[] = [];
  await inPool(cap, MINT_CONCURRENCY, async (i) => {
    tokens[i] = (await mintToken(client, secret, `u${i}`, ids[i % conversations])).token;
  });
  console.log(
    `minted ${cap} tokens (${perConversation} users × ${conversations} conversations) in ${elapsed(started)}`,
  );

  const rssIdle = rssKb(server.pid);
  const latencies: number[] = [];
  const members = ids.map(() => 0);
  const closes = new Map<string, number>();
  const openFailures = new Map<string, number>();
  let [delivered, lastReceive] = [0, 0];
  const onText = (text: string) => {
    const at = wallNow();
    const frame = JSON.parse(text) as { type?: string; activity?: { text?: string } };
    const sentAt = Number(frame.activity?.text);
    if (frame.type !== "activity" || !Number.isFinite(sentAt)) return;
    delivered++;
    lastReceive = at;
    latencies.push(at - sentAt);
  };
  started = performance.now();
  await inPool(cap, OPEN_CONCURRENCY, async (i) => {
    if (openFailures.size > 0) return; // stop at the first failure; keep what opened
    try {
      const ws = await openSocket(`${server.edgeUrl}/ws?token=${tokens[i]}`, onText);
      ws.on("close", (code) => closing || bump(closes, String(code)));
      sockets.push(ws);
      members[i % conversations]!++;
    } catch (error) {
      bump(openFailures, (error as Error).message);
    }
  });
  console.log(`opened ${sockets.length} sockets in ${elapsed(started)}`);
  if (openFailures.size > 0) {
    console.log(`NOTE: opening stopped at the first failures (${tally(openFailures)}); continuing with what opened`);
  }
  const rssOpen = rssKb(server.pid);

  // Steady posting: every 10 ms tick issues what is due since the start, round-robin over conversations.
  const postFailures = new Map<string, number>();
  let [issued, ok, inFlight, expected, lastDone] = [0, 0, 0, 0, 0];
  const post = (index: number) => {
    const body = JSON.stringify({ type: "message", text: String(wallNow()), from: { id: "bench" } });
    const all = { ...headers, "content-type": "application/json", "content-length": Buffer.byteLength(body) };
    inFlight++;
    void client
      .send("POST", `/v1/conversations/${ids[index]}/activities`, all, body)
      .then(
        (reply) => {
          if (reply.status !== 201) return bump(postFailures, String(reply.status));
          ok++;
          expected += members[index]!;
        },
        (error: NodeJS.ErrnoException) => bump(postFailures, error.code ?? error.message),
      )
      .finally(() => {
        inFlight--;
        lastDone = performance.now();
      });
  };
  const start = performance.now();
  const startWall = wallNow();
  const until = start + opts.seconds * 1000;
  for (let tick = 1; tick <= opts.seconds * (1000 / TICK_MS) * 2 && performance.now() < until; tick++) {
    const due = Math.floor(((performance.now() - start) / 1000) * opts.rate) - issued;
    for (let k = 0; k < due && inFlight < MAX_IN_FLIGHT; k++) post(issued++ % conversations);
    await sleep(Math.max(0, start + tick * TICK_MS - performance.now()));
  }
  const window = (performance.now() - start) / 1000;
  for (let i = 0; i < SETTLE_MS / TICK_MS && inFlight > 0; i++) await sleep(TICK_MS);
  for (let i = 0; i < DRAIN_MS / 100 && delivered < expected; i++) await sleep(100);
  const rssRun = rssKb(server.pid);

  const p = percentiles(latencies);
  const postedRate = ok / ((Math.max(lastDone, start + 1) - start) / 1000);
  const deliveredRate = delivered / ((Math.max(lastReceive, startWall + 1) - startWall) / 1000);
  console.log(`\nposted: ${issued} issued in ${window.toFixed(2)} s, ${ok} stored (201), ${postedRate.toFixed(0)}/s`);
  console.log(`post failures: ${tally(postFailures)}`);
  console.log(`delivered: ${delivered} of ${expected} expected, ${deliveredRate.toFixed(0)} messages/s`);
  console.log(`latency post→receive ms: p50 ${fmt(p.p50, 0)}  p95 ${fmt(p.p95, 0)}  p99 ${fmt(p.p99, 0)}`);
  console.log(`                          max ${fmt(p.max, 0)}  (n=${p.n})`);
  console.log(`sockets closed unexpectedly: ${[...closes.values()].reduce((a, b) => a + b, 0)} (${tally(closes)})`);
  console.log(`server RSS (one process: gateway+edge+services): idle ${mb(rssIdle)}, with sockets ${mb(rssOpen)},`);
  console.log(`  after the run ${mb(rssRun)}; client RSS ${mb(rssKb("self"))}`);
  const met =
    p.p99 < GOAL_P99_MS && postedRate >= GOAL_RATE * 0.98 && delivered >= expected && sockets.length === subscribers;
  console.log(`goal p99 < ${GOAL_P99_MS} ms at ${GOAL_RATE.toLocaleString("en")} posted/s: ${met ? "met" : "NOT met"}`);
  if (sockets.length < subscribers || opts.rate < GOAL_RATE) console.log("  (settings below the goal's load)");
} finally {
  closing = true;
  await closeAll(sockets);
  client.agent.destroy();
  await server.stop();
}
