import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_TOKEN, call } from "./helpers/app.js";
import { createTestDatabase } from "./helpers/database.js";
import { freePort, type ServiceProcess, spawnService } from "./helpers/process.js";
import { type RedisServer, startRedis } from "./helpers/redis.js";
import { type Frame, openSocket, type TestSocket } from "./helpers/ws.js";

let redis: RedisServer;
const nodes: { proc: ServiceProcess; base: string; ws: string }[] = [];
let edgeOnly: { proc: ServiceProcess; ws: string; health: string } | undefined;

beforeAll(async () => {
  redis = await startRedis(await freePort());
  const databaseUrl = await createTestDatabase();
  // Every node of one deployment shares the database, Redis, the key sealing the signing keys and its public URL.
  const shared = {
    DATABASE_URL: databaseUrl,
    REDIS_URL: redis.url,
    ADMIN_TOKEN,
    KEY_ENCRYPTION_KEY: randomBytes(32).toString("base64"),
    // The token issuer: every node must agree on it.
    PUBLIC_URL: "http://127.0.0.1:8080",
  };
  for (let i = 0; i < 2; i++) {
    const port = await freePort();
    const wsPort = await freePort();
    const grpcPort = await freePort();
    const proc = await spawnService(
      { ...shared, PORT: String(port), WS_PORT: String(wsPort), GRPC_PORT: String(grpcPort) },
      [],
      /^gateway /m,
    );
    nodes.push({ proc, base: `http://127.0.0.1:${port}`, ws: `ws://127.0.0.1:${wsPort}/ws` });
    if (i === 0) {
      // A third process runs only the edge; it reaches conversations and auth over gRPC.
      const edgePort = await freePort();
      const upstream = `http://127.0.0.1:${grpcPort}`;
      const edge = await spawnService(
        {
          ...shared,
          WS_PORT: String(edgePort),
          GRPC_PORT: String(await freePort()),
          CONVERSATIONS_GRPC_URL: upstream,
          AUTH_GRPC_URL: upstream,
        },
        ["--services=realtime"],
        /^edge /m,
      );
      edgeOnly = { proc: edge, ws: `ws://127.0.0.1:${edgePort}/ws`, health: `http://127.0.0.1:${edgePort}/healthz` };
    }
  }
}, 120_000);

afterAll(async () => {
  await Promise.all([...nodes.map((n) => n.proc.stop()), edgeOnly?.proc.stop()]);
  await redis?.stop();
});

const isActivity = (f: Frame) => f.type === "activity";
const seqs = (frames: Frame[]) => frames.map((f) => Number(f.activity.seq));

async function setup() {
  const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
  const tenant = await call(a.base, "POST", "/admin/v1/tenants", { token: ADMIN_TOKEN, body: { name: "multi-node" } });
  const key = tenant.body.api_key as string;
  const channel = await call(a.base, "POST", "/v1/channels", {
    key,
    body: { name: "ws", type: "websocket", config: {} },
  });
  const first = await call(a.base, "POST", "/v1/tokens", { token: channel.body.secret, body: { user: { id: "u1" } } });
  const conversationId = first.body.conversation_id as string;
  const second = await call(b.base, "POST", "/v1/tokens", {
    token: channel.body.secret,
    body: { user: { id: "u2" }, conversation_id: conversationId },
  });
  const post = (node: (typeof nodes)[0], text: string) =>
    call(node.base, "POST", `/v1/conversations/${conversationId}/activities`, {
      key,
      body: { type: "message", text, from: { id: "agent" } },
    });
  return { a, b, key, conversationId, tokens: [first.body.token as string, second.body.token as string], post };
}

/**
 * A client as design.md §4 asks clients to behave: it remembers the last seq
 * it saw and, when the server closes with 1001, reconnects with that watermark.
 */
function follow(url: string, token: string) {
  const seqs: number[] = [];
  let reconnects = -1;
  let stopped = false;
  let current: TestSocket | undefined;
  let failure: unknown;
  const connect = async (): Promise<void> => {
    reconnects++;
    const watermark = seqs.length ? `&watermark=${seqs[seqs.length - 1]}` : "";
    const socket = await openSocket(`${url}?token=${token}${watermark}`);
    current = socket;
    await socket.next((frame) => frame.type === "connection_established");
    socket.ws.on("message", (data) => {
      const frame = JSON.parse(data.toString()) as Frame;
      if (frame.type === "activity") seqs.push(Number(frame.activity.seq));
    });
    void socket.closed.then(({ code }) => {
      // A node that closes for good (the suite's teardown) refuses the reconnect: that ends the follower.
      if (!stopped && code === 1001)
        connect().catch((error: unknown) => {
          failure = error;
        });
    });
  };
  const ready = connect();
  return {
    seqs,
    /** Resolves once the first connection_established arrived. */
    ready,
    reconnects: () => reconnects,
    async until(count: number) {
      await ready;
      await expect
        .poll(() => (failure ? Number.POSITIVE_INFINITY : seqs.length), { timeout: 15_000 })
        .toBeGreaterThanOrEqual(count);
      if (failure) throw failure;
    },
    stop() {
      stopped = true;
      current?.ws.close();
    },
  };
}

describe("two edge processes and Redis", () => {
  it("shows clients on different edges the same sequence, in order", async () => {
    const { a, b, tokens, post } = await setup();
    const onA = follow(a.ws, tokens[0] as string);
    const onB = follow(b.ws, tokens[1] as string);
    await Promise.all([onA.ready, onB.ready]);
    await Promise.all(Array.from({ length: 40 }, (_, i) => post(i % 2 ? b : a, `m${i}`)));
    await onA.until(40);
    await onB.until(40);
    const expected = Array.from({ length: 40 }, (_, i) => i + 1);
    expect(onA.seqs).toEqual(expected);
    expect(onB.seqs).toEqual(expected);
    onA.stop();
    onB.stop();
  });

  it("serves clients from an edge-only process that reaches the services over gRPC", async () => {
    const { a, tokens, post } = await setup();
    const edge = edgeOnly as NonNullable<typeof edgeOnly>;
    expect((await fetch(edge.health)).status).toBe(200);
    const socket = await openSocket(`${edge.ws}?token=${tokens[1]}`);
    await socket.next((f) => f.type === "connection_established");
    for (let i = 0; i < 5; i++) await post(a, `via ${i}`);
    expect(seqs(await socket.collect(isActivity, 5, 10_000))).toEqual([1, 2, 3, 4, 5]);
    socket.send({ type: "activity", client_id: "edge-1", text: "from the edge" });
    expect((await socket.next((f) => f.type === "ack", 10_000)).activity.seq).toBe("6");
    await expect(openSocket(`${edge.ws}?token=bad.token.here`)).rejects.toMatchObject({ status: 401 });
    socket.ws.close();
  });

  it("keeps accepting writes while Redis is down, and clients resume by watermark with nothing missing", async () => {
    const { a, b, tokens, post } = await setup();
    const follower = follow(b.ws, tokens[1] as string);
    await follower.ready;
    for (let i = 0; i < 5; i++) await post(a, `before ${i}`);
    await follower.until(5);

    await redis.stop();
    const during = await Promise.all(Array.from({ length: 10 }, (_, i) => post(i % 2 ? b : a, `during ${i}`)));
    expect(during.map((r) => r.status)).toEqual(Array(10).fill(201));
    await redis.restart();
    for (const node of [a, b]) {
      await expect.poll(async () => (await call(node.base, "GET", "/readyz")).status, { timeout: 10_000 }).toBe(200);
    }
    await post(a, "after");
    await follower.until(16);
    // Told that the live feed broke, the client came back with its watermark at least once.
    expect(follower.reconnects()).toBeGreaterThanOrEqual(1);
    expect(follower.seqs).toEqual(Array.from({ length: 16 }, (_, i) => i + 1));
    follower.stop();
  });
});
