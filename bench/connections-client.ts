// Child of bench/connections-cluster.ts: opens `count` sockets to one edge from one source address, in
// batches, reports progress on stdout ("OPEN n", "FAIL reason", "HELD n"), then holds them until stdin closes.
import type WebSocket from "ws";
import { closeAll, openSocket } from "./ws-lib.js";

const [url, countText, localAddress, tokensText] = process.argv.slice(2);
const count = Number(countText);
const tokens = (tokensText ?? "").split(",");
const BATCH = 250;
const sockets: WebSocket[] = [];
let failure = "";
for (let start = 0; start < count && !failure; start += BATCH) {
  const batch = Array.from({ length: Math.min(BATCH, count - start) }, (_, i) =>
    openSocket(`${url}?token=${tokens[(start + i) % tokens.length]}`, () => undefined, 30_000, localAddress),
  );
  for (const result of await Promise.allSettled(batch)) {
    if (result.status === "fulfilled") sockets.push(result.value);
    else failure ||= String(result.reason instanceof Error ? result.reason.message : result.reason);
  }
  process.stdout.write(`OPEN ${sockets.length}\n`);
}
if (failure) process.stdout.write(`FAIL ${failure}\n`);
process.stdout.write(`HELD ${sockets.length}\n`);
process.stdin.resume();
process.stdin.on("end", () => void closeAll(sockets).then(() => process.exit(0)));
