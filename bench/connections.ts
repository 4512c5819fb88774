// Connection capacity of ONE edge process: opens authenticated sockets (each on
// a conversation stream via a client token of its own, as real users have;
// --per-token up to 90 shares tokens, under WS_MAX_CONNECTIONS_PER_USER=100) in
// batches, stops at the first failures, and reports sockets held, server RSS
// growth per socket (both readings settled, see settledRssKb) and time to open.
// The client side is capped at its open-file limit − 500.
import type WebSocket from "ws";
import { Client, createTenant, inPool, options } from "./lib.js";
import { startServer } from "./server.js";
import { bump, closeAll, fileLimit, mb, mintToken, openSocket, rssKb, settledRssKb, tally } from "./ws-lib.js";

const opts = options("connections", { connections: 19_000, batch: 500, conversations: 10, "per-token": 1 });
const [GOAL_KB_PER_SOCKET, DEADLINE_MS] = [2, 15 * 60_000];
const SOCKETS_PER_TOKEN = Math.min(90, Math.max(1, Math.floor(opts["per-token"])));
const batch = Math.max(1, Math.floor(opts.batch));
const conversations = Math.max(1, Math.floor(opts.conversations));
const limit = fileLimit("self");
const cap = Math.max(0, limit - 500);
const target = Math.min(Math.floor(opts.connections), cap);
console.log(`client: open-file limit ${limit} (ulimit -n) → cap ${cap} sockets; attempting ${target}`);

const server = await startServer("services/host/main.ts");
const client = new Client(server.url, 32);
const sockets: WebSocket[] = [];
let closing = false;
try {
  if (!server.edgeUrl) throw new Error("the server printed no `edge ws://…` line");
  console.log(`server pid ${server.pid}: open-file limit ${fileLimit(server.pid)}, edge ${server.edgeUrl}`);
  const { headers, channelId, secret } = await createTenant(client, server);
  const ids: string[] = [];
  await inPool(conversations, 8, async (i) => {
    const body = { channel_id: channelId };
    ids[i] = (await client.json<{ id: string }>("POST", "/v1/conversations", 201, headers, body)).id;
  });
  const tokens: string[] = [];
  await inPool(Math.ceil(target / SOCKETS_PER_TOKEN), 32, async (i) => {
    tokens[i] = (await mintToken(client, secret, `c${i}`, ids[i % conversations])).token;
  });
  console.log(`${tokens.length} client tokens (≤ ${SOCKETS_PER_TOKEN} sockets each) on ${conversations} conversations`);

  // Warm-up: one batch opened and closed loads what all sockets share (verifier keys, gRPC channel, heap
  // for an opening burst), so the baseline RSS that follows does not charge it to the measured sockets.
  const closes = new Map<string, number>();
  const open = async (i: number, into = sockets) => {
    const ws = await openSocket(`${server.edgeUrl}/ws?token=${tokens[Math.floor(i / SOCKETS_PER_TOKEN)]}`, () => {});
    ws.on("close", (code) => closing || into !== sockets || bump(closes, String(code)));
    into.push(ws);
  };
  const warm: WebSocket[] = [];
  const warmFailures = new Map<string, number>();
  const warmResults = await Promise.allSettled(
    Array.from({ length: Math.min(batch, target) }, (_, i) => open(i, warm)),
  );
  for (const r of warmResults) if (r.status === "rejected") bump(warmFailures, (r.reason as Error).message);
  if (warmFailures.size > 0) console.log(`warm-up failures: ${tally(warmFailures)}`);
  await closeAll(warm);
  const baseline = await settledRssKb(server.pid);
  const rssBefore = baseline.kb;
  const clientBefore = rssKb("self");
  console.log(
    `baseline after a warm-up batch of ${warm.length} sockets opened and closed: server RSS ${mb(rssBefore)} (settled in ${(baseline.ms / 1000).toFixed(0)} s)`,
  );
  const failures = new Map<string, number>();
  const start = performance.now();
  let stopped = "";
  for (let from = 0; from < target; from += batch) {
    if (performance.now() - start > DEADLINE_MS) {
      stopped = `deadline of ${DEADLINE_MS / 60_000} min`;
      break;
    }
    const results = await Promise.allSettled(
      Array.from({ length: Math.min(batch, target - from) }, (_, k) => open(from + k)),
    );
    for (const r of results) if (r.status === "rejected") bump(failures, (r.reason as Error).message);
    if (failures.size > 0) {
      stopped = `failures in the batch from socket ${from}: ${tally(failures)}`;
      break;
    }
  }
  const openSeconds = (performance.now() - start) / 1000;
  const rssBurst = rssKb(server.pid);
  const settled = await settledRssKb(server.pid);
  const held = sockets.filter((ws) => ws.readyState === ws.OPEN).length;
  const rssAfter = settled.kb;
  const perSocket = (rssAfter - rssBefore) / Math.max(1, sockets.length);
  const clientPer = (rssKb("self") - clientBefore) / Math.max(1, sockets.length);

  console.log(`\nstopped: ${stopped || `no (all ${target} attempted)`}`);
  console.log(`sockets held: ${held} (opened ${sockets.length}, closed since: ${tally(closes)})`);
  const rate = sockets.length / openSeconds;
  console.log(`time to open: ${openSeconds.toFixed(1)} s (${rate.toFixed(0)} sockets/s, batches of ${batch})`);
  console.log(`server RSS right after opening: ${mb(rssBurst)} (garbage of the burst included)`);
  console.log(
    `server RSS settled: ${mb(rssBefore)} → ${mb(rssAfter)} (after ${(settled.ms / 1000).toFixed(0)} s), ${perSocket.toFixed(2)} KB per connection`,
  );
  console.log(`client RSS: ${clientPer.toFixed(2)} KB per socket (ws package, this process)`);
  const serverLimit = fileLimit(server.pid).toLocaleString("en");
  const goal = `per-connection RSS goal ≤ ${GOAL_KB_PER_SOCKET} KB`;
  console.log(`100,000 sockets needs ~6 edge processes on this box (per-process file limit ${serverLimit}); ${goal}`);
  console.log(`${goal}: ${perSocket <= GOAL_KB_PER_SOCKET ? "met" : "NOT met"} (${perSocket.toFixed(2)} KB measured)`);
} finally {
  closing = true;
  await closeAll(sockets);
  client.agent.destroy();
  await server.stop();
}
