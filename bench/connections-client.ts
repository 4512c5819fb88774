// Child of bench/connections-cluster.ts: opens `count` sockets to one edge from one source address, in
// batches, reports progress on stdout ("OPEN n", "FAIL reasons ×count", "HELD n"), then holds them until
// stdin closes.
// Tokens come one per line from a file, used round-robin.
import { readFileSync } from "node:fs";
import type WebSocket from "ws";
import { closeAll, openSocket } from "./ws-lib.js";

const [url, countText, localAddress, tokenFile] = process.argv.slice(2);
const count = Number(countText);
const tokens = readFileSync(tokenFile ?? "", "utf8")
  .split("\n")
  .filter(Boolean);
const BATCH = 250;
// A stray failure is counted and opening goes on; past this share of the attempts the edge is at its limit.
const MAX_FAILED_SHARE = 0.01;
const sockets: WebSocket[] = [];
const failures = new Map<string, number>();
let failed = 0;
for (let start = 0; start < count && failed <= count * MAX_FAILED_SHARE; start += BATCH) {
  const batch = Array.from({ length: Math.min(BATCH, count - start) }, (_, i) =>
    openSocket(`${url}?token=${tokens[(start + i) % tokens.length]}`, () => undefined, 30_000, localAddress),
  );
  for (const result of await Promise.allSettled(batch)) {
    if (result.status === "fulfilled") sockets.push(result.value);
    else {
      const reason = String(result.reason instanceof Error ? result.reason.message : result.reason);
      failures.set(reason, (failures.get(reason) ?? 0) + 1);
      failed++;
    }
  }
  process.stdout.write(`OPEN ${sockets.length}\n`);
}
if (failed > 0) process.stdout.write(`FAIL ${[...failures].map(([r, n]) => `${r} ×${n}`).join(", ")}\n`);
process.stdout.write(`HELD ${sockets.length}\n`);
process.stdin.resume();
process.stdin.on("end", () => void closeAll(sockets).then(() => process.exit(0)));
