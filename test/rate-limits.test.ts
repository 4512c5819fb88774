import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ActivityType, ConversationsService } from "../gen/converger/v1/conversations_pb.js";
import { ADMIN_TOKEN, call, fixtures, startTestApp, type TestApp } from "./helpers/app.js";
import { openSocket } from "./helpers/ws.js";

const RATE_LIMIT_POLICY = /^"credential";q=\d+;w=60, "tenant";q=\d+;w=60, "ip";q=\d+;w=60$/;

async function activityCount(app: TestApp, conversationId: string): Promise<number> {
  const { rows } = await app.db.query("SELECT count(*)::int AS n FROM activities WHERE conversation_id = $1", [
    conversationId,
  ]);
  return rows[0].n;
}

describe("rate limits on state-changing calls", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({
      RATE_LIMIT_PER_MINUTE: "5",
      RATE_LIMIT_TENANT_PER_MINUTE: "1000",
      RATE_LIMIT_IP_PER_MINUTE: "1000",
    });
  });
  afterAll(() => t.stop());

  it("answers 429 with Retry-After and RateLimit fields past the per-credential limit, storing nothing", async () => {
    const f = fixtures(t.baseUrl);
    const tenant = await f.tenant();
    // Creating the channel and the conversation are writes of this key too: 2 of its 5.
    const channel = await f.channel(tenant.key);
    const conversation = await f.conversation(tenant.key, channel.id);
    const remaining: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await f.message(tenant.key, conversation.id, `m${i}`);
      expect(res.status).toBe(201);
      expect(res.headers.get("ratelimit-policy")).toBeNull();
      remaining.push(res.headers.get("ratelimit") ?? "");
    }
    expect(remaining.map((v) => /^"credential";r=(\d+);t=\d+$/.exec(v)?.[1])).toEqual(["2", "1", "0"]);

    const limited = await f.message(tenant.key, conversation.id, "one too many");
    expect(limited.status).toBe(429);
    expect(limited.body.code).toBe("resource_exhausted");
    expect(limited.body.message).toContain("per credential");
    const retryAfter = Number(limited.headers.get("retry-after"));
    expect(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60).toBe(true);
    expect(limited.headers.get("ratelimit-policy")).toMatch(RATE_LIMIT_POLICY);
    expect(limited.headers.get("ratelimit")).toBe(`"credential";r=0;t=${retryAfter}`);
    expect(await activityCount(t, conversation.id)).toBe(3);
  });

  it("lifts a tenant's servers with the tenant's own limit, while its end users keep the per-user cap", async () => {
    const f = fixtures(t.baseUrl);
    const tenant = await f.tenant();
    const raised = await call(t.baseUrl, "PATCH", `/admin/v1/tenants/${tenant.id}`, {
      token: ADMIN_TOKEN,
      body: { rate_limit_per_minute: 20 },
    });
    expect(raised.status).toBe(200);
    const channel = await f.channel(tenant.key);
    const conversation = await f.conversation(tenant.key, channel.id);
    const userToken = await f.clientToken(tenant.key, conversation.id, "carol");
    // Three writes so far; the API key goes past RATE_LIMIT_PER_MINUTE (5).
    for (let i = 0; i < 5; i++) expect((await f.message(tenant.key, conversation.id, `m${i}`)).status).toBe(201);
    const asUser = () =>
      call(t.baseUrl, "POST", `/v1/conversations/${conversation.id}/activities`, {
        token: userToken,
        body: { type: "message", text: "from carol" },
      });
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await asUser()).status);
    expect(statuses).toEqual([201, 201, 201, 201, 201, 429]);
  });

  it("does not count reads against the write limit", async () => {
    const f = fixtures(t.baseUrl);
    const tenant = await f.tenant();
    const channel = await f.channel(tenant.key);
    const conversation = await f.conversation(tenant.key, channel.id);
    for (let i = 0; i < 12; i++) {
      const res = await call(t.baseUrl, "GET", `/v1/conversations/${conversation.id}/activities`, { key: tenant.key });
      expect(res.status).toBe(200);
      expect(res.headers.get("ratelimit")).toBeNull();
    }
    expect((await f.message(tenant.key, conversation.id, "still allowed")).status).toBe(201);
  });

  it("limits Connect calls on the gateway port like REST ones", async () => {
    const f = fixtures(t.baseUrl);
    const tenant = await f.tenant();
    const channel = await f.channel(tenant.key);
    const conversation = await f.conversation(tenant.key, channel.id);
    const post = () =>
      fetch(`${t.baseUrl}/converger.v1.ConversationsService/CreateActivity`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-api-key": tenant.key },
        body: JSON.stringify({
          conversationId: conversation.id,
          type: "ACTIVITY_TYPE_MESSAGE",
          text: "hi",
          from: { id: "agent" },
        }),
      });
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await post()).status);
    const limited = await post();
    expect([...statuses, limited.status]).toEqual([200, 200, 200, 429]);
    expect(((await limited.json()) as { code: string }).code).toBe("resource_exhausted");
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(await activityCount(t, conversation.id)).toBe(3);
  });

  it("limits gRPC calls on the internal port like REST ones", async () => {
    const f = fixtures(t.baseUrl);
    const tenant = await f.tenant();
    const channel = await f.channel(tenant.key);
    const conversation = await f.conversation(tenant.key, channel.id);
    const client = createClient(
      ConversationsService,
      createGrpcTransport({ baseUrl: `http://127.0.0.1:${t.app.ports.grpc}` }),
    );
    const post = () =>
      client.createActivity(
        { conversationId: conversation.id, type: ActivityType.MESSAGE, text: "hi", from: { id: "agent" } },
        { headers: { "x-api-key": tenant.key } },
      );
    for (let i = 0; i < 3; i++) await post();
    const refused = await post().catch((e: unknown) => ConnectError.from(e));
    expect(refused).toBeInstanceOf(ConnectError);
    expect((refused as ConnectError).code).toBe(Code.ResourceExhausted);
    expect(Number((refused as ConnectError).metadata.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(await activityCount(t, conversation.id)).toBe(3);
  });

  it("answers a rate-limited WebSocket publish with an error frame naming the retry time and keeps the socket", async () => {
    const f = fixtures(t.baseUrl);
    const tenant = await f.tenant();
    const channel = await f.channel(tenant.key);
    const conversation = await f.conversation(tenant.key, channel.id);
    const userToken = await f.clientToken(tenant.key, conversation.id, "alice");
    const socket = await openSocket(`ws://127.0.0.1:${t.app.ports.edge}/ws?token=${userToken}`);
    for (let i = 1; i <= 6; i++) socket.send({ type: "activity", client_id: `c-${i}`, text: `hello ${i}` });
    const acks = await socket.collect((frame) => frame.type === "ack", 5);
    expect(acks.map((a) => a.client_id).sort()).toEqual(["c-1", "c-2", "c-3", "c-4", "c-5"]);
    const refused = await socket.next((frame) => frame.type === "error");
    expect(refused).toMatchObject({ code: "resource_exhausted", client_id: "c-6" });
    expect(refused.retry_after).toBeGreaterThanOrEqual(1);
    socket.send({ type: "ping" });
    await socket.next((frame) => frame.type === "pong");
    expect(await activityCount(t, conversation.id)).toBe(5);
    socket.ws.close();
  });
});

describe("per-tenant and per-address limits", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({
      RATE_LIMIT_PER_MINUTE: "1000",
      RATE_LIMIT_TENANT_PER_MINUTE: "6",
      RATE_LIMIT_IP_PER_MINUTE: "1000",
      TRUSTED_PROXIES: "127.0.0.2/32",
    });
  });
  afterAll(() => t.stop());

  it("shares the tenant limit between the tenant's credentials", async () => {
    const f = fixtures(t.baseUrl);
    const tenant = await f.tenant();
    const channel = await f.channel(tenant.key);
    const conversation = await f.conversation(tenant.key, channel.id);
    const userToken = await f.clientToken(tenant.key, conversation.id, "bob");
    const asUser = () =>
      call(t.baseUrl, "POST", `/v1/conversations/${conversation.id}/activities`, {
        token: userToken,
        body: { type: "message", text: "from bob" },
      });
    // Channel, conversation and token: 3 of the tenant's 6.
    expect((await f.message(tenant.key, conversation.id, "a")).status).toBe(201);
    expect((await asUser()).status).toBe(201);
    expect((await f.message(tenant.key, conversation.id, "b")).status).toBe(201);
    const limited = await asUser();
    expect(limited.status).toBe(429);
    expect(limited.body.message).toContain("per tenant");
    expect(limited.headers.get("ratelimit")).toMatch(/^"tenant";r=0;t=\d+$/);
    // Another tenant is not affected.
    const other = await f.tenant("Other");
    expect((await f.channel(other.key)).id).toBeTruthy();
  });

  it("lets an operator set a tenant's own limit, and restore the default", async () => {
    const f = fixtures(t.baseUrl);
    const tenant = await f.tenant();
    const set = await call(t.baseUrl, "PATCH", `/admin/v1/tenants/${tenant.id}`, {
      token: ADMIN_TOKEN,
      body: { rate_limit_per_minute: 2 },
    });
    expect(set.status).toBe(200);
    expect(set.body).toMatchObject({ status: "active", rate_limit_per_minute: 2 });
    expect((await call(t.baseUrl, "GET", `/admin/v1/tenants/${tenant.id}`, { token: ADMIN_TOKEN })).body).toMatchObject(
      {
        rate_limit_per_minute: 2,
      },
    );
    const channel = await f.channel(tenant.key);
    await f.conversation(tenant.key, channel.id);
    const limited = await call(t.baseUrl, "POST", "/v1/channels", {
      key: tenant.key,
      body: { name: "third", type: "echo", config: {} },
    });
    expect(limited.status).toBe(429);
    expect(limited.headers.get("ratelimit-policy")).toContain('"tenant";q=2;w=60');

    const raised = await call(t.baseUrl, "PATCH", `/admin/v1/tenants/${tenant.id}`, {
      token: ADMIN_TOKEN,
      body: { rate_limit_per_minute: 0 },
    });
    expect(raised.body.rate_limit_per_minute).toBe(0);
    const again = await call(t.baseUrl, "POST", "/v1/channels", {
      key: tenant.key,
      body: { name: "third", type: "echo", config: {} },
    });
    expect(again.status).toBe(201);
    // Back to the default 6: two spent (the refused call gave its point back), this the third.
    expect(again.headers.get("ratelimit")).toMatch(/^"tenant";r=3;t=\d+$/);
  });

  it("refuses an update that changes nothing and a limit out of range", async () => {
    const tenant = await fixtures(t.baseUrl).tenant();
    for (const body of [{}, { rate_limit_per_minute: -1 }, { rate_limit_per_minute: 100_000_001 }]) {
      const res = await call(t.baseUrl, "PATCH", `/admin/v1/tenants/${tenant.id}`, { token: ADMIN_TOKEN, body });
      expect(res.status).toBe(400);
    }
  });
});

describe("refused calls", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ RATE_LIMIT_PER_MINUTE: "4", RATE_LIMIT_TENANT_PER_MINUTE: "8" });
  });
  afterAll(() => t.stop());

  it("spend nothing: a user hammering its own limit leaves its tenant's budget alone", async () => {
    const f = fixtures(t.baseUrl);
    const tenant = await f.tenant();
    const channel = await f.channel(tenant.key);
    const conversation = await f.conversation(tenant.key, channel.id);
    const userToken = await f.clientToken(tenant.key, conversation.id, "dave");
    const statuses = [];
    for (let i = 0; i < 14; i++) {
      const res = await call(t.baseUrl, "POST", `/v1/conversations/${conversation.id}/activities`, {
        token: userToken,
        body: { type: "message", text: `spam ${i}` },
      });
      statuses.push(res.status);
    }
    expect(statuses.filter((s) => s === 201)).toHaveLength(4);
    expect(statuses.filter((s) => s === 429)).toHaveLength(10);
    // 3 writes of the key and 4 of the user: the tenant's 8th write still goes through.
    const last = await f.message(tenant.key, conversation.id, "from the server");
    expect(last.status).toBe(201);
    expect(last.headers.get("ratelimit")).toMatch(/^"credential";r=0;t=\d+$|^"tenant";r=0;t=\d+$/);
  });
});

describe("per-address limit", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ RATE_LIMIT_IP_PER_MINUTE: "4", TRUSTED_PROXIES: "127.0.0.1/32" });
  });
  afterAll(() => t.stop());

  it("counts every tenant's writes from one address together", async () => {
    const f = fixtures(t.baseUrl);
    const headers = { "x-forwarded-for": "203.0.113.7" };
    const a = await f.tenant("A");
    const b = await f.tenant("B");
    const create = (key: string) =>
      call(t.baseUrl, "POST", "/v1/channels", { key, headers, body: { name: "c", type: "echo", config: {} } });
    const statuses = [];
    for (const key of [a.key, b.key, a.key, b.key, a.key]) statuses.push((await create(key)).status);
    expect(statuses).toEqual([201, 201, 201, 201, 429]);
    // Another client behind the same trusted proxy has its own count.
    const other = await call(t.baseUrl, "POST", "/v1/channels", {
      key: a.key,
      headers: { "x-forwarded-for": "203.0.113.8" },
      body: { name: "c", type: "echo", config: {} },
    });
    expect(other.status).toBe(201);
  });
});

describe("X-Forwarded-For from an untrusted peer", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ RATE_LIMIT_IP_PER_MINUTE: "3", RATE_LIMIT_AUTH_FAILURES_PER_MINUTE: "3" });
  });
  afterAll(() => t.stop());

  it("is never the rate-limit key: a new forged address per call changes nothing", async () => {
    const f = fixtures(t.baseUrl);
    const tenant = await f.tenant();
    const statuses = [];
    for (let i = 0; i < 4; i++) {
      const res = await call(t.baseUrl, "POST", "/v1/channels", {
        key: tenant.key,
        headers: { "x-forwarded-for": `198.51.100.${i}` },
        body: { name: "c", type: "echo", config: {} },
      });
      statuses.push(res.status);
    }
    // The tenant creation by the operator was the first write from 127.0.0.1.
    expect(statuses).toEqual([201, 201, 429, 429]);
  });
});

describe("failed authentications", () => {
  let t: TestApp;
  let key: string;
  beforeAll(async () => {
    t = await startTestApp({
      RATE_LIMIT_AUTH_FAILURES_PER_MINUTE: "3",
      TRUSTED_PROXIES: "127.0.0.1/32",
      ADMIN_ALLOWED_IPS: "127.0.0.1/32,192.0.2.0/24",
    });
    key = (await fixtures(t.baseUrl).tenant()).key;
  });
  afterAll(() => t.stop());

  const from = (address: string) => ({ "x-forwarded-for": address });

  it("locks an address out after too many wrong API keys, even for the right key, and only that address", async () => {
    const wrong = `${key.slice(0, -2)}xx`;
    const statuses = [];
    for (let i = 0; i < 4; i++) {
      statuses.push((await call(t.baseUrl, "GET", "/v1/channels", { key: wrong, headers: from("192.0.2.1") })).status);
    }
    expect(statuses).toEqual([401, 401, 401, 429]);
    const right = await call(t.baseUrl, "GET", "/v1/channels", { key, headers: from("192.0.2.1") });
    expect(right.status).toBe(429);
    expect(Number(right.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect((await call(t.baseUrl, "GET", "/v1/channels", { key, headers: from("192.0.2.2") })).status).toBe(200);
  });

  it("locks an address out after too many wrong admin tokens", async () => {
    const statuses = [];
    for (let i = 0; i < 4; i++) {
      const res = await call(t.baseUrl, "GET", "/admin/v1/tenants", {
        token: `wrong-${i}`,
        headers: from("192.0.2.3"),
      });
      statuses.push(res.status);
    }
    expect(statuses).toEqual([401, 401, 401, 429]);
    const right = await call(t.baseUrl, "GET", "/admin/v1/tenants", { token: ADMIN_TOKEN, headers: from("192.0.2.3") });
    expect(right.status).toBe(429);
  });

  it("locks an address out after too many wrong channel secrets", async () => {
    const statuses = [];
    for (let i = 0; i < 4; i++) {
      const res = await call(t.baseUrl, "POST", "/v1/tokens", {
        token: `cvs_${"x".repeat(42)}${i}`,
        headers: from("192.0.2.4"),
        body: { user: { id: "u" } },
      });
      statuses.push(res.status);
    }
    expect(statuses).toEqual([401, 401, 401, 429]);
  });

  it("limits wrong client secrets at the token endpoint per address, without shutting the client out elsewhere", async () => {
    const client = await call(t.baseUrl, "POST", "/v1/oauth-clients", {
      key,
      headers: from("192.0.2.5"),
      body: { name: "reporting", scopes: ["conversations:read"] },
    });
    expect(client.status).toBe(201);
    const token = (secret: string, address: string) =>
      fetch(`${t.baseUrl}/auth/token`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", ...from(address) },
        body: new URLSearchParams({
          grant_type: "client_credentials",
          client_id: client.body.client_id,
          client_secret: secret,
        }),
      });
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await token(`wrong-${i}`, "192.0.2.10")).status);
    expect(statuses).toEqual([401, 401, 401, 429]);
    const refused = await token(client.body.client_secret, "192.0.2.10");
    expect(refused.status).toBe(429);
    expect(await refused.json()).toMatchObject({ error: "slow_down" });
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    // The client's own servers, elsewhere, still get their tokens.
    expect((await token(client.body.client_secret, "192.0.2.20")).status).toBe(200);
  });

  it("locks an address out of inbound webhooks after too many wrong signatures", async () => {
    const channel = await fixtures(t.baseUrl).channel(key);
    const inbound = (signature: string) =>
      call(t.baseUrl, "POST", `/v1/channels/${channel.id}/inbound`, {
        headers: { ...from("192.0.2.40"), "x-hub-signature-256": signature },
        body: { external_id: "x", message_id: "m", from: { id: "u" }, text: "hi" },
      });
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await inbound(`sha256=${String(i).repeat(64)}`)).status);
    expect(statuses).toEqual([401, 401, 401, 429]);
    // Another channel (another tenant's, say) behind the same provider address is not locked out.
    const other = await fixtures(t.baseUrl).channel(key);
    const elsewhere = await call(t.baseUrl, "POST", `/v1/channels/${other.id}/inbound`, {
      headers: { ...from("192.0.2.40"), "x-hub-signature-256": `sha256=${"0".repeat(64)}` },
      body: {},
    });
    expect(elsewhere.status).toBe(401);
  });

  it("locks an address out of the edge after too many bad tokens, by the address the gateway would see", async () => {
    const upgrade = (token: string, address: string) =>
      openSocket(`ws://127.0.0.1:${t.app.ports.edge}/ws?token=${token}`, { headers: from(address) }).then(
        (socket) => {
          socket.ws.close();
          return 101;
        },
        (error: { status?: number }) => error.status,
      );
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push(await upgrade(`a.b.c${i}`, "192.0.2.50"));
    expect(statuses).toEqual([401, 401, 401, 429]);
    expect(await upgrade("a.b.c", "192.0.2.51")).toBe(401);
  });

  it("answers 401 before reading a malformed body", async () => {
    const res = await call(t.baseUrl, "POST", "/v1/channels", { body: "{not json", headers: from("192.0.2.30") });
    expect(res.status).toBe(401);
    const gz = await call(t.baseUrl, "POST", "/v1/channels", {
      key,
      body: "{}",
      headers: { ...from("192.0.2.31"), "content-encoding": "gzip" },
    });
    expect(gz.status).toBe(415);
  });
});
