import { createConnectTransport } from "@connectrpc/connect-node";
import { expect } from "vitest";
import WebSocket from "ws";
import type { Activity } from "../../../gen/converger/v1/conversations_pb.js";
import type { ClientContext } from "../src/context.js";
import type { ConvergerStream } from "../src/stream.js";

/**
 * The context `new Converger()` builds (converger.ts, on another branch), made
 * by hand: `ws` as the WebSocket, and a getToken asked again on `refresh`.
 * `attempts` counts WebSockets constructed, whatever the stream reports.
 */
export function testContext(baseUrl: string, auth: { token?: string; getToken?: () => Promise<string> }) {
  let current = auth.token;
  const counter = { attempts: 0, tokenCalls: 0 };
  class CountingWebSocket extends WebSocket {
    constructor(...args: ConstructorParameters<typeof WebSocket>) {
      super(...args);
      counter.attempts++;
    }
  }
  const context: ClientContext = {
    baseUrl,
    transport: createConnectTransport({ baseUrl, httpVersion: "1.1" }),
    apiKey: undefined,
    // ws implements the browser WebSocket interface (onopen, onmessage, onclose, onerror, send, close).
    WebSocket: CountingWebSocket as unknown as typeof globalThis.WebSocket,
    fetch: globalThis.fetch,
    async token(refresh) {
      if (auth.getToken && (refresh || current === undefined)) {
        counter.tokenCalls++;
        current = await auth.getToken();
      }
      return current;
    },
  };
  return { context, counter };
}

/** Every activity the stream emits, by seq, and a way to wait for the n-th. */
export function recordActivities(stream: ConvergerStream) {
  const activities: Activity[] = [];
  stream.on("activity", (activity) => activities.push(activity));
  return {
    activities,
    seqs: () => activities.map((a) => Number(a.seq)),
    async waitFor(count: number, timeout = 20_000) {
      await expect.poll(() => activities.length, { timeout }).toBeGreaterThanOrEqual(count);
    },
  };
}

/** Resolves when the stream reaches `state` (at once if it is there). */
export function reach(stream: ConvergerStream, state: ConvergerStream["state"]): Promise<void> {
  if (stream.state === state) return Promise.resolve();
  return new Promise((resolve) => {
    const off = stream.on("state", (s) => {
      if (s !== state) return;
      off();
      resolve();
    });
  });
}

/** 1, 2, …, n: what a gap-free, duplicate-free stream of n activities shows. */
export const upTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

/** The conversation's stored activities, through REST with the API key. */
export async function storedActivities(baseUrl: string, key: string, conversationId: string) {
  const res = await fetch(`${baseUrl}/v1/conversations/${conversationId}/activities?watermark=0&limit=1000`, {
    headers: { "x-api-key": key },
  });
  if (res.status !== 200) throw new Error(`list: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { activities: { seq: string; text: string; id: string }[] };
  return body.activities;
}
