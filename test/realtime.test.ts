import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RealtimeService } from "../gen/converger/v1/realtime_pb.js";
import { call, fixtures, startTestApp, type TestApp } from "./helpers/app.js";
import { forge } from "./helpers/tokens.js";
import { type Frame, openSocket, type TestSocket } from "./helpers/ws.js";

let t: TestApp;
let f: ReturnType<typeof fixtures>;
let tenant: { id: string; key: string };
let channel: { id: string; secret: string };
let wsUrl: string;

beforeAll(async () => {
  t = await startTestApp({ WS_MAX_CONNECTIONS_PER_USER: "3" });
  f = fixtures(t.baseUrl);
  tenant = await f.tenant("Realtime Co");
  channel = await f.channel(tenant.key, "websocket");
  wsUrl = `ws://127.0.0.1:${t.app.ports.edge}/ws`;
});
afterAll(() => t?.stop());

async function userToken(userId: string, conversationId?: string) {
  const res = await call(t.baseUrl, "POST", "/v1/tokens", {
    token: channel.secret,
    body: { user: { id: userId, name: userId }, conversation_id: conversationId },
  });
  return res.body as { token: string; conversation_id: string };
}

const isActivity = (f: Frame) => f.type === "activity";
const seqs = (frames: Frame[]) => frames.map((f) => Number(f.activity.seq));

describe("handshake", () => {
  it("refuses a missing or bad token with 401 before any socket exists", async () => {
    await expect(openSocket(wsUrl)).rejects.toMatchObject({ status: 401 });
    await expect(openSocket(`${wsUrl}?token=not.a.jwt`)).rejects.toMatchObject({ status: 401 });
    const expired = await forge(t, { claims: { tenant_id: tenant.id }, exp: Math.floor(Date.now() / 1000) - 120 });
    await expect(openSocket(`${wsUrl}?token=${expired}`)).rejects.toMatchObject({ status: 401 });
  });

  it("accepts the token as a bearer.<jwt> subprotocol and checks a present Origin", async () => {
    const { token } = await userToken("olga");
    const socket = await openSocket(wsUrl, { protocols: ["converger", `bearer.${token}`] });
    expect(socket.ws.protocol).toBe("converger");
    socket.ws.close();
    const own = await openSocket(`${wsUrl}?token=${token}`, { origin: t.app.config.publicUrl });
    own.ws.close();
    await expect(openSocket(`${wsUrl}?token=${token}`, { origin: "https://evil.example" })).rejects.toMatchObject({
      status: 403,
    });
  });

  it("holds the per-user cap against a burst of simultaneous upgrades", async () => {
    const { token } = await userToken("burst");
    const results = await Promise.allSettled(Array.from({ length: 6 }, () => openSocket(`${wsUrl}?token=${token}`)));
    const opened = results.filter((r) => r.status === "fulfilled");
    expect(opened).toHaveLength(3);
    for (const r of opened) {
      await (r as PromiseFulfilledResult<TestSocket>).value.next((fr) => fr.type === "connection_established");
    }
    expect(results.filter((r) => r.status === "rejected").map((r) => (r.reason as { status: number }).status)).toEqual([
      429, 429, 429,
    ]);
    for (const r of opened) (r as PromiseFulfilledResult<TestSocket>).value.ws.close();
  });

  it("caps connections per user with 429", async () => {
    const { token } = await userToken("capped");
    const open = await Promise.all([1, 2, 3].map(() => openSocket(`${wsUrl}?token=${token}`)));
    // The upgrade (the client's open) is only the first half of the handshake: the edge then opens
    // the stream, and a socket whose stream fails is closed and gives its place back. Held means established.
    for (const s of open) await s.next((fr) => fr.type === "connection_established");
    await expect(openSocket(`${wsUrl}?token=${token}`)).rejects.toMatchObject({ status: 429 });
    for (const s of open) s.ws.close();
  });
});

describe("subscription cap", () => {
  it("answers subscriptions beyond WS_MAX_SUBSCRIPTIONS with an error frame", async () => {
    const small = await startTestApp({ WS_MAX_SUBSCRIPTIONS: "2" });
    try {
      const sf = fixtures(small.baseUrl);
      const owner = await sf.tenant();
      const ch = await sf.channel(owner.key);
      const convs = await Promise.all([1, 2, 3].map(() => sf.conversation(owner.key, ch.id)));
      const token = await forge(small, { claims: { tenant_id: owner.id, scope: "conversations:read" } });
      const socket = await openSocket(`ws://127.0.0.1:${small.app.ports.edge}/ws?token=${token}`);
      for (const c of convs) socket.send({ type: "subscribe", conversation_id: c.id });
      expect(await socket.next((fr) => fr.type === "error")).toMatchObject({ code: "resource_exhausted" });
      expect(await socket.collect((fr) => fr.type === "connection_established" && fr.conversation_id, 2)).toHaveLength(
        2,
      );
      socket.ws.close();
    } finally {
      await small.stop();
    }
  });
});

describe("tenant connection cap", () => {
  it("refuses connections past WS_MAX_CONNECTIONS_PER_TENANT with 429", async () => {
    const capped = await startTestApp({ WS_MAX_CONNECTIONS_PER_TENANT: "2" });
    try {
      const cf = fixtures(capped.baseUrl);
      const k = (await cf.tenant()).key;
      const ch = await cf.channel(k);
      const url = `ws://127.0.0.1:${capped.app.ports.edge}/ws`;
      const mintFor = async (user: string) =>
        (await call(capped.baseUrl, "POST", "/v1/tokens", { token: ch.secret, body: { user: { id: user } } })).body
          .token;
      const sockets = [
        await openSocket(`${url}?token=${await mintFor("a")}`),
        await openSocket(`${url}?token=${await mintFor("b")}`),
      ];
      await expect(openSocket(`${url}?token=${await mintFor("c")}`)).rejects.toMatchObject({ status: 429 });
      sockets[0]?.ws.close();
      await sockets[0]?.closed;
      const again = await openSocket(`${url}?token=${await mintFor("c")}`);
      for (const s of [again, sockets[1]]) s?.ws.close();
    } finally {
      await capped.stop();
    }
  });
});

describe("conversation streams", () => {
  it("starts with the current watermark, then streams REST posts in seq order", async () => {
    const { token, conversation_id } = await userToken("anna");
    await f.message(tenant.key, conversation_id, "before");
    const socket = await openSocket(`${wsUrl}?token=${token}`);
    const established = await socket.next((fr) => fr.type === "connection_established");
    expect(established).toEqual({
      type: "connection_established",
      conversation_id,
      tenant_id: tenant.id,
      watermark: "1",
    });
    await Promise.all(Array.from({ length: 30 }, (_, i) => f.message(tenant.key, conversation_id, `live ${i}`)));
    const live = await socket.collect(isActivity, 30);
    expect(seqs(live)).toEqual(Array.from({ length: 30 }, (_, i) => i + 2));
    socket.ws.close();
  });

  it("replays exactly the 500 activities missed since the watermark, in order, then goes live", async () => {
    const { token, conversation_id } = await userToken("ben");
    const first = await openSocket(`${wsUrl}?token=${token}`);
    // Posts before connection_established are history (its watermark), not live frames.
    await first.next((fr) => fr.type === "connection_established");
    await f.message(tenant.key, conversation_id, "seen");
    const seen = await first.next(isActivity);
    first.ws.close();
    await first.closed;
    for (let batch = 0; batch < 10; batch++) {
      await Promise.all(
        Array.from({ length: 50 }, (_, i) => f.message(tenant.key, conversation_id, `missed ${batch}-${i}`)),
      );
    }
    const again = await openSocket(`${wsUrl}?token=${token}&watermark=${seen.activity.seq}`);
    const replayed = await again.collect(isActivity, 500, 15_000);
    expect(seqs(replayed)).toEqual(Array.from({ length: 500 }, (_, i) => i + 2));
    await f.message(tenant.key, conversation_id, "live again");
    const all = await again.collect(isActivity, 501);
    expect(Number(all[500]?.activity.seq)).toBe(502);
    expect(again.frames.filter(isActivity)).toHaveLength(501);
    again.ws.close();
  });

  it("streams typing and read receipts to every subscriber, the reader included", async () => {
    const { token, conversation_id } = await userToken("cleo");
    const other = await userToken("dan", conversation_id);
    const a = await openSocket(`${wsUrl}?token=${token}`);
    const b = await openSocket(`${wsUrl}?token=${other.token}`);
    await a.next((fr) => fr.type === "connection_established");
    await b.next((fr) => fr.type === "connection_established");
    await f.message(tenant.key, conversation_id, "hello");
    await call(t.baseUrl, "POST", `/v1/conversations/${conversation_id}/read`, { token: other.token, body: {} });
    for (const s of [a, b]) {
      expect(await s.next((fr) => fr.type === "read")).toEqual({
        type: "read",
        conversation_id,
        user_id: "dan",
        read_up_to: "1",
      });
    }
    a.send({ type: "activity", client_id: "t1", activity_type: "typing" });
    expect(await b.next((fr) => fr.type === "typing")).toMatchObject({ conversation_id, from: { id: "cleo" } });
    a.ws.close();
    b.ws.close();
  });
});

describe("publishing over the socket", () => {
  it("acks a durable activity, sent as the token's user, and replays the ack for a repeated client_id", async () => {
    const { token, conversation_id } = await userToken("eve");
    const socket = await openSocket(`${wsUrl}?token=${token}`);
    socket.send({ type: "activity", client_id: "c-1", text: "over ws", metadata: { k: 1 } });
    const ack = await socket.next((fr) => fr.type === "ack");
    expect(ack.activity).toMatchObject({
      conversation_id,
      seq: "1",
      text: "over ws",
      type: "message",
      from: { id: "eve" },
    });
    const stored = await t.db.query("SELECT text FROM activities WHERE id = $1", [ack.activity.id]);
    expect(stored.rows).toEqual([{ text: "over ws" }]);
    socket.send({ type: "activity", client_id: "c-1", text: "over ws", metadata: { k: 1 } });
    const acks = await socket.collect((fr) => fr.type === "ack", 2);
    expect(acks[1]?.activity.id).toBe(ack.activity.id);
    // The same key through REST is the same namespace.
    const rest = await call(t.baseUrl, "POST", `/v1/conversations/${conversation_id}/activities`, {
      token,
      headers: { "Idempotency-Key": "c-1" },
      body: { type: "message", text: "over ws", metadata: { k: 1 } },
    });
    expect(rest.status).toBe(200);
    expect(rest.body.id).toBe(ack.activity.id);
    socket.ws.close();
  });

  it("answers bad frames with error frames and keeps the socket open", async () => {
    const { token } = await userToken("finn");
    const socket = await openSocket(`${wsUrl}?token=${token}`);
    socket.send("not json");
    socket.send({ type: "dance" });
    socket.send({ type: "activity", text: "no client id" });
    socket.send({ type: "activity", client_id: "x", activity_type: "shout" });
    socket.send({ type: "activity", client_id: "big", text: "a".repeat(10_001) });
    const errors = await socket.collect((fr) => fr.type === "error", 5);
    expect(errors.map((e) => e.code)).toEqual(Array(5).fill("invalid_argument"));
    expect(errors[3]?.client_id).toBe("x");
    expect(errors[4]?.client_id).toBe("big");
    socket.send({ type: "ping" });
    expect(await socket.next((fr) => fr.type === "pong")).toEqual({ type: "pong" });
    socket.ws.close();
  });

  it("refuses binary frames, closed conversations and other conversations with error frames, keeping the socket", async () => {
    const { token, conversation_id } = await userToken("joan");
    const elsewhere = await f.conversation(tenant.key, channel.id);
    const socket = await openSocket(`${wsUrl}?token=${token}`);
    await socket.next((fr) => fr.type === "connection_established");
    socket.ws.send(Buffer.from(JSON.stringify({ type: "ping" })), { binary: true });
    expect(await socket.next((fr) => fr.type === "error")).toMatchObject({ code: "invalid_argument" });
    socket.send({ type: "subscribe", conversation_id: elsewhere.id });
    socket.send({ type: "activity", client_id: "x1", conversation_id: elsewhere.id, text: "sneak" });
    const refused = await socket.collect((fr) => fr.type === "error", 3);
    expect(refused.slice(1).map((e) => e.code)).toEqual(["not_found", "not_found"]);
    await call(t.baseUrl, "POST", `/v1/conversations/${conversation_id}/close`, { key: tenant.key });
    socket.send({ type: "activity", client_id: "late", text: "too late" });
    expect((await socket.collect((fr) => fr.type === "error", 4))[3]).toMatchObject({
      code: "failed_precondition",
      client_id: "late",
    });
    socket.send({ type: "ping" });
    await socket.next((fr) => fr.type === "pong");
    const stored = await t.db.query("SELECT count(*)::int AS n FROM activities WHERE conversation_id = ANY($1)", [
      [conversation_id, elsewhere.id],
    ]);
    expect(stored.rows[0].n).toBe(0);
    socket.ws.close();
  });

  it("drops a socket that sends a frame over 64 KiB", async () => {
    const { token } = await userToken("gus");
    const socket = await openSocket(`${wsUrl}?token=${token}`);
    socket.send({ type: "ping", pad: "x".repeat(70_000) });
    const { code } = await socket.closed;
    expect([1006, 1009]).toContain(code);
  });

  it("answers a flood with errors, then closes it with 4429", async () => {
    const { token } = await userToken("hal");
    const socket = await openSocket(`${wsUrl}?token=${token}`);
    for (let i = 0; i < 200; i++) socket.send({ type: "ping" });
    expect((await socket.closed).code).toBe(4429);
    expect(socket.frames.some((fr) => fr.type === "error" && fr.code === "resource_exhausted")).toBe(true);
  });
});

describe("slow consumers", () => {
  it("closes a consumer that stops reading, while others keep receiving everything", async () => {
    const { token, conversation_id } = await userToken("slowpoke");
    const other = await userToken("quick", conversation_id);
    const slow = await openSocket(`${wsUrl}?token=${token}`);
    const quick = await openSocket(`${wsUrl}?token=${other.token}`);
    await slow.next((fr) => fr.type === "connection_established");
    await quick.next((fr) => fr.type === "connection_established");
    // Stop reading: the kernel buffers fill, then the edge's own backpressure limit (1 MiB) trips.
    (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const big = "x".repeat(9_000);
    for (let batch = 0; batch < 20 && slow.ws.readyState === slow.ws.OPEN; batch++) {
      await Promise.all(Array.from({ length: 50 }, () => f.message(tenant.key, conversation_id, big)));
    }
    (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    const { code } = await slow.closed;
    expect(code).not.toBe(1000);
    const posted = Number(
      (await call(t.baseUrl, "GET", `/v1/conversations/${conversation_id}`, { key: tenant.key })).body.last_seq,
    );
    expect(seqs(await quick.collect(isActivity, posted, 20_000))).toEqual(
      Array.from({ length: posted }, (_, i) => i + 1),
    );
    quick.ws.close();
  }, 60_000);
});

describe("tokens over time and tenants", () => {
  it("closes with 4408 when the token expires, unless renewed with an auth frame", async () => {
    const { conversation_id } = await userToken("ivy");
    const claims = { token_use: "client", tenant_id: tenant.id, channel_id: channel.id, conversation_id };
    const soon = Math.floor(Date.now() / 1000) + 2;
    const short = await forge(t, { claims, exp: soon });
    const lapsing = await openSocket(`${wsUrl}?token=${short}`);
    const renewed = await openSocket(`${wsUrl}?token=${short}`);
    renewed.send({ type: "auth", token: await forge(t, { claims, exp: soon + 600 }) });
    await renewed.next((fr) => fr.type === "auth_ok");
    expect((await lapsing.closed).code).toBe(4408);
    // Both were due in the same second until the auth frame moved one: a pong asked for after that
    // second's close shows the renewed socket was kept (its close would have come before the pong).
    renewed.send({ type: "ping" });
    await renewed.next((fr) => fr.type === "pong");
    expect(renewed.ws.readyState).toBe(renewed.ws.OPEN);
    renewed.ws.close();
  });

  it("lets an OAuth token subscribe to its tenant's conversations only", async () => {
    const mine = await f.conversation(tenant.key, channel.id);
    const other = await f.tenant("Other RT");
    const theirs = await f.conversation(other.key, (await f.channel(other.key)).id);
    const token = await forge(t, { claims: { tenant_id: tenant.id, scope: "conversations:read conversations:write" } });
    const socket = await openSocket(`${wsUrl}?token=${token}`);
    socket.send({ type: "subscribe", conversation_id: theirs.id, watermark: 0 });
    expect(await socket.next((fr) => fr.type === "error")).toMatchObject({ code: "not_found" });
    socket.send({ type: "subscribe", conversation_id: mine.id, watermark: 0 });
    await socket.next((fr) => fr.type === "connection_established" && fr.conversation_id === mine.id);
    await f.message(other.key, theirs.id, "secret");
    await f.message(tenant.key, mine.id, "visible");
    const got = await socket.next(isActivity);
    expect(got.activity.text).toBe("visible");
    expect(JSON.stringify(socket.frames)).not.toContain("secret");
    socket.ws.close();
  });

  it("publishes as the OAuth client unless it names a speaker, and as a client token's own user whatever it says", async () => {
    const conversation = await f.conversation(tenant.key, channel.id);
    const token = await forge(t, { claims: { tenant_id: tenant.id, scope: "conversations:read conversations:write" } });
    const worker = await openSocket(`${wsUrl}?token=${token}`);
    const publish = { type: "activity", conversation_id: conversation.id };
    worker.send({ ...publish, client_id: "w-1", text: "as the client" });
    expect((await worker.next((fr) => fr.type === "ack" && fr.client_id === "w-1")).activity.from).toMatchObject({
      id: "cvc_forged",
    });
    worker.send({ ...publish, client_id: "w-2", text: "as an agent", from: { id: "agent-7", name: "Agent Seven" } });
    expect((await worker.next((fr) => fr.type === "ack" && fr.client_id === "w-2")).activity.from).toEqual({
      id: "agent-7",
      name: "Agent Seven",
    });
    worker.send({ ...publish, client_id: "w-3", text: "nobody", from: { id: "" } });
    expect(await worker.next((fr) => fr.type === "error" && fr.client_id === "w-3")).toMatchObject({
      code: "invalid_argument",
    });
    worker.ws.close();

    const frank = await userToken("frank");
    const user = await openSocket(`${wsUrl}?token=${frank.token}`);
    user.send({ type: "activity", client_id: "u-1", text: "hi", from: { id: "mallory" } });
    expect((await user.next((fr) => fr.type === "ack")).activity.from).toMatchObject({ id: "frank" });
    user.ws.close();
  });

  it("streams the tenant event feed as event_created, and refuses another tenant's feed", async () => {
    const token = await forge(t, { claims: { tenant_id: tenant.id, scope: "conversations:read" } });
    const socket = await openSocket(`${wsUrl}?token=${token}&tenant=${tenant.id}`);
    await call(t.baseUrl, "POST", "/v1/events", {
      key: tenant.key,
      headers: { "X-Tenant-ID": tenant.id },
      body: { message: "deployed" },
    });
    expect(await socket.next((fr) => fr.type === "event_created")).toMatchObject({
      event: { message: "deployed", tenant_id: tenant.id },
    });
    const other = await f.tenant("Feed Other");
    await expect(openSocket(`${wsUrl}?token=${token}&tenant=${other.id}`)).rejects.toMatchObject({ status: 403 });
    socket.ws.close();
  });
});

describe("RealtimeService.Subscribe over gRPC", () => {
  it("streams stored activities after the watermark, then live ones, to a gRPC client", async () => {
    const { token, conversation_id } = await userToken("grpc-user");
    await f.message(tenant.key, conversation_id, "one");
    await f.message(tenant.key, conversation_id, "two");
    const client = createClient(
      RealtimeService,
      createGrpcTransport({ baseUrl: `http://127.0.0.1:${t.app.ports.grpc}` }),
    );
    const abort = new AbortController();
    const stream = client.subscribe(
      { conversationId: conversation_id, watermark: 0n },
      { headers: { authorization: `Bearer ${token}` }, signal: abort.signal },
    );
    const seen: string[] = [];
    for await (const frame of stream) {
      if (frame.frame.case !== "activity") continue;
      seen.push(frame.frame.value.text);
      if (seen.length === 2) await f.message(tenant.key, conversation_id, "three");
      if (seen.length === 3) break;
    }
    abort.abort();
    expect(seen).toEqual(["one", "two", "three"]);
    const other = await f.conversation(tenant.key, channel.id);
    const refused = client.subscribe({ conversationId: other.id }, { headers: { authorization: `Bearer ${token}` } });
    await expect(refused[Symbol.asyncIterator]().next()).rejects.toMatchObject({ code: 5 });
  });
});

describe("shutdown", () => {
  it("closes every socket with 1001 so clients reconnect elsewhere", async () => {
    const own = await startTestApp();
    const ownF = fixtures(own.baseUrl);
    const k = (await ownF.tenant()).key;
    const ch = await ownF.channel(k);
    const minted = await call(own.baseUrl, "POST", "/v1/tokens", { token: ch.secret, body: { user: { id: "z" } } });
    const socket = await openSocket(`ws://127.0.0.1:${own.app.ports.edge}/ws?token=${minted.body.token}`);
    await socket.next((fr) => fr.type === "connection_established");
    await own.stop();
    expect((await socket.closed).code).toBe(1001);
  });
});
