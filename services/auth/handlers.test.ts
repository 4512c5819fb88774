import { randomUUID } from "node:crypto";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { AuthService } from "../../gen/converger/v1/auth_pb.js";
import { DirectoryService } from "../../gen/converger/v1/conversations_pb.js";
import type { AuthFailure } from "../common/access/access.js";
import { CLIENT_IP_HEADER, type Principal } from "../common/access/context.js";
import { INTERNAL_HEADER } from "../common/access/internal.js";
import { createMemoryLimiterStore } from "../common/access/limiter-store.js";
import { createPrincipalTransports } from "../common/access/principal-transport.js";
import { createRateLimits } from "../common/access/rate-limits.js";
import { createTokenVerifier } from "../common/access/token-verifier.js";
import { loadConfig } from "../common/config.js";
import { createLogger } from "../common/obs/logger.js";
import { createFakeAuthStores, createFakeSigningKeys } from "./fake-stores.js";
import { authImpl } from "./handlers.js";
import { OAUTH_ERROR_KEY } from "./oauth-errors.js";
import { createTokenIssuer } from "./tokens.js";

const TENANT = randomUUID();
const CHANNEL = randomUUID();
const ISSUER = "https://api.example";
const AUTH_FAILURES = 3;

async function setup(options: { tenantActive?: boolean } = {}) {
  const config = loadConfig({ PUBLIC_URL: ISSUER, WS_PORT: "8443", ADMIN_TOKEN: "admin" });
  const stores = createFakeAuthStores();
  const keys = await createFakeSigningKeys();
  const audited: AuthFailure[] = [];
  const joins: {
    tenantId: string;
    conversationId: string;
    channelId: string;
    userId: string;
    internal: string | null;
  }[] = [];
  // The conversations service's DirectoryService, as far as tokens need it.
  const conversations = createRouterTransport(({ rpc }) =>
    rpc(DirectoryService.method.joinConversation, (req, ctx) => {
      const { tenantId, conversationId, channelId, userId } = req;
      joins.push({ tenantId, conversationId, channelId, userId, internal: ctx.requestHeader.get(INTERNAL_HEADER) });
      if (req.conversationId === "00000000-0000-4000-8000-000000000000") {
        throw new ConnectError("conversation not found", Code.NotFound);
      }
      return { conversationId: req.conversationId || randomUUID(), channelId: req.channelId || CHANNEL };
    }),
  );
  const log = createLogger("silent");
  const impl = authImpl({
    clients: stores.clientStore,
    refreshTokens: stores.refreshTokens,
    keys,
    tokens: createTokenIssuer(keys, ISSUER),
    directory: {
      resolveApiKey: async () => undefined,
      resolveChannelSecret: async () => undefined,
      tenantStatus: async () => ({ exists: true, active: options.tenantActive ?? true, rateLimitPerMinute: 0 }),
    },
    conversationsTransport: conversations,
    config,
    edgePort: () => config.wsPort,
    audit: (failure) => audited.push(failure),
    rateLimits: createRateLimits(
      createMemoryLimiterStore(),
      { perCredential: 100, perTenant: 100, perIp: 100, authFailures: AUTH_FAILURES },
      log,
    ),
    recordAudit: async (failure) => {
      audited.push(failure);
    },
  });
  const as = createPrincipalTransports((router) => router.service(AuthService, impl));
  const verifier = createTokenVerifier({ issuer: ISSUER, fetchKeys: keys.publicKeys, cacheSize: 0 });
  const client = (principal: Principal) => createClient(AuthService, as(principal));
  return {
    audited,
    joins,
    verifier,
    client,
    key: client({ kind: "api_key", tenantId: TENANT }),
    open: client({ kind: "public" }),
    config,
  };
}

async function failureOf(call: Promise<unknown>): Promise<{ code: Code; oauth?: string | null; message: string }> {
  const error = await call.then(
    () => undefined,
    (e: unknown) => ConnectError.from(e),
  );
  if (!error) throw new Error("the call succeeded");
  return { code: error.code, oauth: error.metadata.get(OAUTH_ERROR_KEY), message: error.rawMessage };
}

async function registered(s: Awaited<ReturnType<typeof setup>>, scopes = ["conversations:read", "files:write"]) {
  const created = await s.key.createOAuthClient({ name: "reporting", scopes });
  return { id: created.clientId, secret: created.clientSecret as string };
}

describe("AuthService handlers", () => {
  it("trades client credentials for a verifiable access token narrowed to the asked scope", async () => {
    const s = await setup();
    const c = await registered(s);
    const issued = await s.open.issueToken({
      grantType: "client_credentials",
      clientId: c.id,
      clientSecret: c.secret,
      scope: "files:write",
    });
    expect(issued).toMatchObject({ tokenType: "Bearer", expiresIn: 900, scope: "files:write" });
    const claims = await s.verifier.verify(issued.accessToken);
    expect(claims).toMatchObject({ sub: c.id, tenant_id: TENANT, scope: "files:write", token_use: "access" });
    const wider = s.open.issueToken({
      grantType: "client_credentials",
      clientId: c.id,
      clientSecret: c.secret,
      scope: "channels:admin",
    });
    expect(await failureOf(wider)).toMatchObject({ code: Code.InvalidArgument, oauth: "invalid_scope" });
  });

  it("refuses a wrong secret as invalid_client, audits it, and locks the address out after repeated guesses", async () => {
    const s = await setup();
    const c = await registered(s);
    const guess = (secret: string) =>
      s.open.issueToken(
        { grantType: "client_credentials", clientId: c.id, clientSecret: secret },
        { headers: { [CLIENT_IP_HEADER]: "198.51.100.7" } },
      );
    for (let i = 0; i < AUTH_FAILURES; i++) {
      expect(await failureOf(guess(`${c.secret.slice(0, -1)}x`))).toMatchObject({
        code: Code.Unauthenticated,
        oauth: "invalid_client",
      });
    }
    expect(s.audited.map((a) => [a.kind, a.sourceIp])).toEqual(
      Array(AUTH_FAILURES).fill(["client_credentials", "198.51.100.7"]),
    );
    // The right secret from the locked-out address is refused too, unchecked.
    expect((await failureOf(guess(c.secret))).code).toBe(Code.ResourceExhausted);
    expect(await failureOf(s.open.issueToken({ grantType: "password", clientId: c.id }))).toMatchObject({
      oauth: "unsupported_grant_type",
    });
  });

  it("rotates refresh tokens once, and revokes the family when a rotated one comes back", async () => {
    const s = await setup();
    const c = await registered(s);
    const first = await s.open.issueToken({ grantType: "client_credentials", clientId: c.id, clientSecret: c.secret });
    const second = await s.open.refreshToken({ refreshToken: first.refreshToken });
    expect(second.refreshToken).not.toBe(first.refreshToken);
    expect(second.scope).toBe("conversations:read files:write");
    expect(await failureOf(s.open.refreshToken({ refreshToken: first.refreshToken }))).toMatchObject({
      code: Code.InvalidArgument,
      oauth: "invalid_grant",
    });
    expect(s.audited.map((a) => a.kind)).toEqual(["refresh_token"]);
    expect((await failureOf(s.open.refreshToken({ refreshToken: second.refreshToken }))).message).toBe(
      "refresh token is revoked",
    );
    expect((await failureOf(s.open.refreshToken({ refreshToken: "cvr_nothing" }))).message).toBe(
      "refresh token is not valid",
    );
  });

  it("answers an inactive tenant's client as unauthorized_client", async () => {
    const s = await setup({ tenantActive: false });
    const c = await registered(s);
    const refused = s.open.issueToken({ grantType: "client_credentials", clientId: c.id, clientSecret: c.secret });
    expect(await failureOf(refused)).toMatchObject({ code: Code.PermissionDenied, oauth: "unauthorized_client" });
  });

  it("keeps OAuth clients per tenant: another tenant can neither disable nor rotate them", async () => {
    const s = await setup();
    const c = await registered(s);
    const other = s.client({ kind: "api_key", tenantId: randomUUID() });
    expect((await failureOf(other.disableOAuthClient({ clientId: c.id }))).code).toBe(Code.NotFound);
    expect((await failureOf(other.rotateOAuthClientSecret({ clientId: c.id }))).code).toBe(Code.NotFound);
    expect((await other.listOAuthClients({})).clients).toEqual([]);
    const listed = await s.key.listOAuthClients({});
    expect(listed.clients.map((x) => [x.clientId, x.clientSecret])).toEqual([[c.id, undefined]]);
    const rotated = await s.key.rotateOAuthClientSecret({ clientId: c.id });
    expect(rotated.clientSecret).not.toBe(c.secret);
    const stale = s.open.issueToken({ grantType: "client_credentials", clientId: c.id, clientSecret: c.secret });
    expect((await failureOf(stale)).oauth).toBe("invalid_client");
    expect((await s.key.disableOAuthClient({ clientId: c.id })).disabled).toBe(true);
    const disabled = s.open.issueToken({
      grantType: "client_credentials",
      clientId: c.id,
      clientSecret: rotated.clientSecret as string,
    });
    expect((await failureOf(disabled)).oauth).toBe("invalid_client");
  });

  it("names an unknown scope at registration", async () => {
    const s = await setup();
    const refused = await failureOf(s.key.createOAuthClient({ name: "x", scopes: ["files:write", "root"] }));
    expect(refused).toMatchObject({ code: Code.InvalidArgument });
    expect(refused.message).toMatch(/^scopes\[1\]: unknown scope "root"/);
  });

  it("mints a client token for the channel's user, joining the conversation with internal credentials", async () => {
    const s = await setup();
    const channel = s.client({ kind: "channel", tenantId: TENANT, channelId: CHANNEL, channelActive: true });
    const minted = await channel.createClientToken({ user: { id: "alice", name: "Alice" } });
    expect(minted.expiresIn).toBe(3600);
    expect(minted.streamUrl).toBe(`wss://api.example:8443/ws?token=${minted.token}`);
    const claims = await s.verifier.verify(minted.token);
    expect(claims).toMatchObject({
      sub: "alice",
      name: "Alice",
      token_use: "client",
      tenant_id: TENANT,
      channel_id: CHANNEL,
      conversation_id: minted.conversationId,
    });
    expect(s.joins).toEqual([
      { tenantId: TENANT, conversationId: "", channelId: CHANNEL, userId: "alice", internal: s.config.internalToken },
    ]);
  });

  it("refuses client tokens from an inactive channel, a non-channel credential, or for a missing conversation", async () => {
    const s = await setup();
    const inactive = s.client({ kind: "channel", tenantId: TENANT, channelId: CHANNEL, channelActive: false });
    expect((await failureOf(inactive.createClientToken({ user: { id: "a" } }))).code).toBe(Code.FailedPrecondition);
    expect((await failureOf(s.key.createClientToken({ user: { id: "a" } }))).code).toBe(Code.PermissionDenied);
    const missing = s.key.createConversationToken({
      conversationId: "00000000-0000-4000-8000-000000000000",
      user: { id: "a" },
    });
    expect((await failureOf(missing)).code).toBe(Code.NotFound);
    expect(s.joins.map((j) => j.conversationId)).toEqual(["00000000-0000-4000-8000-000000000000"]);
  });

  it("refreshes an end user's token for the same user and conversation", async () => {
    const s = await setup();
    const conversationId = randomUUID();
    const user = s.client({
      kind: "end_user",
      tenantId: TENANT,
      userId: "bob",
      userName: "Bob",
      conversationId,
      channelId: CHANNEL,
    });
    const renewed = await user.refreshClientToken({});
    expect(renewed.conversationId).toBe(conversationId);
    expect(await s.verifier.verify(renewed.token)).toMatchObject({
      sub: "bob",
      name: "Bob",
      conversation_id: conversationId,
    });
    expect((await failureOf(s.key.refreshClientToken({}))).code).toBe(Code.PermissionDenied);
  });
});
