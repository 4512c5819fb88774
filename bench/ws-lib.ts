// WebSocket-edge helpers for the benches: client tokens, sockets that wait for
// connection_established, bounded closing, and /proc readers (RSS, file limit).
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import WebSocket from "ws";
import type { Client } from "./lib.js";

const OPEN_TIMEOUT_MS = 15_000;
const CLOSE_TIMEOUT_MS = 10_000;

/** Wall-clock ms with fractions (the same clock in every process of this box). */
export const wallNow = () => performance.timeOrigin + performance.now();

/** Mints a client token with the channel secret; a new conversation unless `conversationId` is given. */
export function mintToken(client: Client, secret: string, userId: string, conversationId?: string) {
  const body = { user: { id: userId }, ...(conversationId ? { conversation_id: conversationId } : {}) };
  const headers = { authorization: `Bearer ${secret}` };
  return client.json<{ token: string; conversation_id: string }>("POST", "/v1/tokens", 201, headers, body);
}

/**
 * Opens a socket and resolves once `connection_established` arrived; later frames go to `onText`.
 * Rejects with the reason (HTTP status of a refused upgrade, errno code such as EMFILE, close code, timeout).
 */
export function openSocket(
  url: string,
  onText: (text: string) => void,
  timeoutMs = OPEN_TIMEOUT_MS,
  localAddress?: string,
) {
  return new Promise<WebSocket>((resolve, reject) => {
    // A source address of its own gives a client process its own ~28k ephemeral ports.
    const ws = new WebSocket(url, { perMessageDeflate: false, ...(localAddress ? { localAddress } : {}) });
    let settled = false;
    const fail = (reason: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.terminate();
      reject(new Error(reason));
    };
    const timer = setTimeout(() => fail(`no connection_established within ${timeoutMs} ms`), timeoutMs);
    ws.on("unexpected-response", (_req, res) => {
      res.resume();
      fail(`upgrade refused: HTTP ${res.statusCode}`);
    });
    ws.on("error", (error: NodeJS.ErrnoException) => fail(error.code ?? error.message));
    ws.on("close", (code) => fail(`closed ${code} before connection_established`));
    ws.on("message", (data) => {
      const text = data.toString();
      if (settled) return onText(text);
      const frame = JSON.parse(text) as { type?: string; code?: string };
      if (frame.type === "connection_established") {
        settled = true;
        clearTimeout(timer);
        resolve(ws);
      } else if (frame.type === "error") fail(`error frame ${frame.code}`);
    });
  });
}

/** Closes every socket (close handshake), waits at most CLOSE_TIMEOUT_MS, then terminates the rest. */
export async function closeAll(sockets: WebSocket[]): Promise<void> {
  const open = sockets.filter((ws) => ws.readyState === WebSocket.OPEN);
  const closed = open.map((ws) => new Promise((resolve) => ws.once("close", resolve)));
  for (const ws of open) ws.close(1000, "bench done");
  await Promise.race([Promise.all(closed), sleep(CLOSE_TIMEOUT_MS)]);
  for (const ws of sockets) if (ws.readyState !== WebSocket.CLOSED) ws.terminate();
}

/** Adds one to `key` of a counting map. */
export function bump(counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

/** `a×2 b×1`, or "none". */
export const tally = (counts: Map<string, number>) => [...counts].map(([k, v]) => `${k}×${v}`).join(" ") || "none";

/** VmRSS of a process in KB (Linux /proc), NaN when unreadable. */
export function rssKb(pid: number | "self"): number {
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match?.[1] ? Number(match[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** The soft open-file limit (`ulimit -n`) of a process, from /proc/<pid>/limits; Infinity if unlimited. */
export function fileLimit(pid: number | "self"): number {
  try {
    const match = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync(`/proc/${pid}/limits`, "utf8"));
    if (match?.[1] === "unlimited") return Number.POSITIVE_INFINITY;
    return match?.[1] ? Number(match[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

export const mb = (kb: number) => `${(kb / 1024).toFixed(1)} MB`;

/**
 * The RSS of a process once it stopped moving: V8 gives back the heap pages an opening burst left
 * behind only after its memory reducer has run (≈10–20 s of quiet; RSS stands still before that), so
 * a reading taken right after a burst charges that garbage to the sockets; the token verifier's
 * cache forgets a token 60–70 s after its last use. Waits `quietMs` (past both), then samples every
 * second until three readings in a row stay within 256 KB, for at most `maxMs`.
 */
export async function settledRssKb(
  pid: number,
  quietMs = 75_000,
  maxMs = 120_000,
): Promise<{ kb: number; ms: number }> {
  const start = performance.now();
  await sleep(quietMs);
  let last = rssKb(pid);
  let steady = 0;
  while (steady < 3 && performance.now() - start < maxMs) {
    await sleep(1_000);
    const now = rssKb(pid);
    steady = Math.abs(now - last) <= 256 ? steady + 1 : 0;
    last = now;
  }
  return { kb: last, ms: performance.now() - start };
}
