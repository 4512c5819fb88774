import fc from "fast-check";
import WebSocket from "ws";
import { anyJson, encodeHostile, HOSTILE_NUMBERS, shortHostileString } from "./fuzz-arbitraries.js";
import { headerSafe } from "./fuzz-http.js";
import type { RawRequest } from "./raw-http.js";

export interface EdgeFixture {
  clientToken: string;
  tenantId: string;
  conversationId: string;
  /** The origin PUBLIC_URL allows. */
  origin: string;
}

/** A WebSocket upgrade with fuzzed token, query, Origin, protocol and handshake headers. */
export function upgradeArb(f: EdgeFixture): fc.Arbitrary<{ request: RawRequest; wellFormed: boolean }> {
  const token = fc.constantFrom(
    undefined,
    f.clientToken,
    `${f.clientToken}x`,
    "",
    "%00",
    "not.a.jwt",
    "a".repeat(20_000),
    encodeURIComponent("\u0000"),
  );
  const watermark = fc.constantFrom(undefined, ...HOSTILE_NUMBERS.map(encodeHostile), "%00", "1", "abc");
  const tenant = fc.constantFrom(undefined, f.tenantId, "%00", "x", "00000000-0000-0000-0000-000000000000");
  return fc
    .record({
      path: fc.constantFrom("/ws", "/ws", "/ws", "/ws/", "//ws", "/WS", "/ws%00", "/"),
      token,
      watermark,
      tenant,
      junk: fc.constantFrom("", "&token=a&token=b", "&%zz", "&=&&", "&watermark=1&watermark=2"),
      // Not fuzzed here: control bytes in headers and the `*` target. uWS's parser neither answers
      // nor closes those until its ~10 s idle timeout (product code never sees them).
      origin: fc.constantFrom(undefined, f.origin, "http://evil.example", "null"),
      protocol: fc.constantFrom(undefined, `bearer.${f.clientToken}`, "bearer.", "bearer.x, chat", "x".repeat(9000)),
      key: fc.constantFrom("dGhlIHNhbXBsZSBub25jZQ==", "", "short", "!!!!"),
      version: fc.constantFrom("13", "8", "x", ""),
      upgrade: fc.constantFrom("websocket", "WebSocket", "h2c", ""),
    })
    .map((c) => {
      const query = [
        c.token === undefined ? "" : `token=${c.token}`,
        c.watermark === undefined ? "" : `watermark=${c.watermark}`,
        c.tenant === undefined ? "" : `tenant=${c.tenant}`,
      ]
        .filter(Boolean)
        .join("&");
      const headers: [string, string][] = [
        ["Connection", "Upgrade"],
        ["Upgrade", c.upgrade],
        ["Sec-WebSocket-Key", c.key],
        ["Sec-WebSocket-Version", c.version],
      ];
      if (c.origin !== undefined) headers.push(["Origin", headerSafe(c.origin)]);
      if (c.protocol !== undefined) headers.push(["Sec-WebSocket-Protocol", c.protocol]);
      const request: RawRequest = { method: "GET", target: `${c.path}?${query}${c.junk}`, headers, autoLength: false };
      // uWS closes anything that is not a handshake for a route it serves, without a status.
      const wellFormed =
        c.path === "/ws" && c.upgrade.toLowerCase() === "websocket" && c.version === "13" && c.key.length === 24;
      return { request, wellFormed };
    });
}

/** Fixed hostile upgrades, each checked on its own. */
export function upgradeCases(f: EdgeFixture): { label: string; request: RawRequest }[] {
  const handshake: [string, string][] = [
    ["Connection", "Upgrade"],
    ["Upgrade", "websocket"],
    ["Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="],
    ["Sec-WebSocket-Version", "13"],
  ];
  const upgrade = (label: string, query: string, extra: [string, string][] = []) => ({
    label: `upgrade ${label}`,
    request: { method: "GET", target: `/ws?${query}`, headers: [...handshake, ...extra], autoLength: false },
  });
  const token = `token=${f.clientToken}`;
  return [
    upgrade("watermark past int64", `${token}&watermark=9223372036854775808`),
    upgrade("watermark negative", `${token}&watermark=-1`),
    upgrade("watermark NUL", `${token}&watermark=%00`),
    upgrade("token NUL", "token=%00"),
    upgrade("tenant NUL", `${token}&tenant=%00`),
    upgrade("foreign Origin", token, [["Origin", "http://evil.example"]]),
  ];
}

/** A client frame: not JSON, binary, or JSON of every frame type with wrong field types. */
export function frameArb(f: EdgeFixture): fc.Arbitrary<string | Buffer> {
  const field = (right: fc.Arbitrary<unknown>) =>
    fc.oneof({ weight: 3, arbitrary: right }, { weight: 1, arbitrary: anyJson });
  const conversationId = fc.oneof(fc.constant(f.conversationId), fc.uuid(), shortHostileString);
  const json = fc.record(
    {
      type: fc.oneof(
        { weight: 6, arbitrary: fc.constantFrom("activity", "subscribe", "unsubscribe", "auth", "ping") },
        { weight: 1, arbitrary: fc.oneof(shortHostileString, anyJson) },
      ),
      client_id: field(shortHostileString),
      activity_type: field(fc.constantFrom("message", "event", "typing", "MESSAGE", "x")),
      conversation_id: field(conversationId),
      watermark: field(fc.constantFrom(...HOSTILE_NUMBERS, 2 ** 63, 1e308, -1)),
      text: field(shortHostileString),
      attachments: field(
        fc.array(fc.record({ file_id: shortHostileString, url: shortHostileString }, { requiredKeys: [] }), {
          maxLength: 3,
        }),
      ),
      metadata: field(fc.dictionary(shortHostileString, anyJson, { maxKeys: 3 })),
      token: field(fc.constantFrom(f.clientToken, "x", "", "\u0000")),
    },
    { requiredKeys: ["type"] },
  );
  return fc.oneof(
    { weight: 8, arbitrary: json.map((v) => JSON.stringify(v)) },
    { weight: 1, arbitrary: fc.string({ maxLength: 50 }) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 100 }).map((b) => Buffer.from(b)) },
    {
      weight: 1,
      arbitrary: fc.constantFrom("", "null", "[]", '"ping"', "{}", '{"type":"ping"}\u0000', "x".repeat(70_000)),
    },
  );
}

/** An open socket and what it received; `closed` is set once it closed. */
export interface LiveSocket {
  ws: WebSocket;
  frames: Record<string, unknown>[];
  closed?: { code: number; reason: string };
  wake?: (() => void) | undefined;
}

export function openLive(url: string): Promise<LiveSocket> {
  return new Promise((resolve, reject) => {
    const live: LiveSocket = { ws: new WebSocket(url), frames: [] };
    live.ws.on("message", (data) => {
      live.frames.push(JSON.parse(data.toString()) as Record<string, unknown>);
      live.wake?.();
    });
    live.ws.on("close", (code, reason) => {
      live.closed = { code, reason: reason.toString() };
      live.wake?.();
    });
    live.ws.on("error", () => live.wake?.());
    live.ws.on("unexpected-response", (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    live.ws.on("open", () => resolve(live));
  });
}

/** Waits until `live` received a frame matching `match` (after index `from`) or closed, or `timeoutMs`. */
export function waitFor(
  live: LiveSocket,
  from: number,
  match: (f: Record<string, unknown>) => boolean,
  timeoutMs: number,
) {
  return new Promise<"frame" | "closed" | "timeout">((resolve) => {
    const check = () => {
      if (live.frames.slice(from).some(match)) return done("frame");
      if (live.closed) return done("closed");
    };
    const done = (outcome: "frame" | "closed" | "timeout") => {
      clearTimeout(timer);
      live.wake = undefined;
      resolve(outcome);
    };
    const timer = setTimeout(() => done("timeout"), timeoutMs);
    live.wake = check;
    check();
  });
}
