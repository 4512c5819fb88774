import { createLocalJWKSet, generateKeyPair, type JWK, jwtVerify, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_TOKEN, call, fixtures, startTestApp, type TestApp } from "./helpers/app.js";
import { forge } from "./helpers/tokens.js";

// A rotated signing key signs only once it has been published this long (services/auth/signing-keys.ts).
const KEY_PUBLISH_DELAY_MS = 5_000;

let t: TestApp;
let f: ReturnType<typeof fixtures>;
let tenant: { id: string; key: string };

beforeAll(async () => {
  t = await startTestApp();
  f = fixtures(t.baseUrl);
  tenant = await f.tenant("Auth Co");
});
afterAll(() => t?.stop());

async function oauthClient(scopes: string[], key = tenant.key) {
  const res = await call(t.baseUrl, "POST", "/v1/oauth-clients", { key, body: { name: "svc", scopes } });
  expect(res.status).toBe(201);
  return res.body as { client_id: string; client_secret: string };
}

async function tokenRequest(form: Record<string, string>, headers: Record<string, string> = {}) {
  return call(t.baseUrl, "POST", "/auth/token", {
    body: new URLSearchParams(form).toString(),
    headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
  });
}

async function accessToken(scopes: string[]) {
  const client = await oauthClient(scopes);
  const res = await tokenRequest({
    grant_type: "client_credentials",
    client_id: client.client_id,
    client_secret: client.client_secret,
  });
  return res.body as { access_token: string; refresh_token: string; scope: string };
}

async function auditCount(): Promise<number> {
  return (await t.db.query("SELECT count(*)::int AS n FROM audit_events")).rows[0].n;
}

describe("client credentials", () => {
  it("issues a 15-minute ES256 access token with a refresh token, as RFC 6749 §5.1", async () => {
    const client = await oauthClient(["conversations:read", "conversations:write"]);
    expect(client.client_secret).toMatch(/^cvcs_/);
    const res = await tokenRequest({
      grant_type: "client_credentials",
      client_id: client.client_id,
      client_secret: client.client_secret,
      scope: "conversations:read",
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(res.body).toMatchObject({ token_type: "Bearer", expires_in: 900, scope: "conversations:read" });
    expect(res.body.refresh_token).toMatch(/^cvr_/);
    const [header, payload] = res.body.access_token
      .split(".")
      .slice(0, 2)
      .map((p: string) => JSON.parse(Buffer.from(p, "base64url").toString()));
    expect(header).toMatchObject({ alg: "ES256", typ: "JWT" });
    expect(header.kid).toBeTruthy();
    expect(payload).toMatchObject({
      sub: client.client_id,
      tenant_id: tenant.id,
      scope: "conversations:read",
      aud: "converger",
    });
    expect(payload.exp - payload.iat).toBe(900);
    for (const claim of ["iss", "nbf", "jti"]) expect(payload[claim]).toBeTruthy();
  });

  it("accepts HTTP Basic and JSON bodies, and defaults to every scope of the client", async () => {
    const client = await oauthClient(["conversations:read", "deliveries:read"]);
    const basic = Buffer.from(`${client.client_id}:${client.client_secret}`).toString("base64");
    const viaBasic = await tokenRequest({ grant_type: "client_credentials" }, { authorization: `Basic ${basic}` });
    expect(viaBasic.status).toBe(200);
    expect(viaBasic.body.scope).toBe("conversations:read deliveries:read");
    const viaJson = await call(t.baseUrl, "POST", "/auth/token", {
      body: { grant_type: "client_credentials", client_id: client.client_id, client_secret: client.client_secret },
    });
    expect(viaJson.status).toBe(200);
  });

  it("lets the access token call what its scopes allow, and answers 403 beyond them", async () => {
    const { access_token } = await accessToken(["conversations:read"]);
    expect((await call(t.baseUrl, "GET", "/v1/conversations", { token: access_token })).status).toBe(200);
    const denied = await call(t.baseUrl, "POST", "/v1/channels", {
      token: access_token,
      body: { name: "x", type: "echo", config: {} },
    });
    expect(denied.status).toBe(403);
    expect(denied.body).toMatchObject({ code: "permission_denied" });
    expect(denied.body.message).toContain("channels:admin");
    // OAuth clients may not manage OAuth clients: that takes the API key.
    expect((await call(t.baseUrl, "GET", "/v1/oauth-clients", { token: access_token })).status).toBe(403);
  });

  it.each([
    ["an unsupported grant", { grant_type: "password" }, 400, "unsupported_grant_type"],
    [
      "an unknown client",
      { grant_type: "client_credentials", client_id: "cvc_nobody", client_secret: `cvcs_${"a".repeat(43)}` },
      401,
      "invalid_client",
    ],
    [
      "a secret of the wrong length",
      { grant_type: "client_credentials", client_id: "cvc_x", client_secret: "short" },
      401,
      "invalid_client",
    ],
  ])("answers %s with an RFC 6749 error", async (_name, form, status, error) => {
    const res = await tokenRequest(form as Record<string, string>);
    expect(res.status).toBe(status);
    expect(res.body).toEqual({ error, error_description: expect.any(String) });
  });

  it("answers a wrong secret with 401 invalid_client, audited without the secret", async () => {
    const client = await oauthClient(["conversations:read"]);
    const before = await auditCount();
    const wrong = `cvcs_${"b".repeat(43)}`;
    const res = await tokenRequest({
      grant_type: "client_credentials",
      client_id: client.client_id,
      client_secret: wrong,
    });
    expect(res.status).toBe(401);
    expect(res.body.error).toBe("invalid_client");
    expect(res.headers.get("www-authenticate")).toContain("Basic");
    await expect.poll(auditCount).toBe(before + 1);
    const rows = await t.db.query("SELECT * FROM audit_events ORDER BY id DESC LIMIT 1");
    expect(rows.rows[0]).toMatchObject({ kind: "client_credentials", source_ip: "127.0.0.1" });
    expect(JSON.stringify(rows.rows)).not.toContain(wrong);
  });

  it("answers a malformed Basic header, or two authentication methods, with 4xx", async () => {
    const malformed = await tokenRequest({ grant_type: "client_credentials" }, { authorization: "Basic !!!notbase64" });
    expect(malformed.status).toBe(401);
    expect(malformed.body.error).toBe("invalid_client");
    const noColon = await tokenRequest(
      { grant_type: "client_credentials" },
      { authorization: `Basic ${Buffer.from("abc").toString("base64")}` },
    );
    expect(noColon.status).toBe(401);
    const client = await oauthClient(["conversations:read"]);
    const both = await tokenRequest(
      { grant_type: "client_credentials", client_id: client.client_id, client_secret: client.client_secret },
      { authorization: `Basic ${Buffer.from(`${client.client_id}:${client.client_secret}`).toString("base64")}` },
    );
    expect(both.status).toBe(400);
    expect(both.body.error).toBe("invalid_request");
  });

  it("refuses scope escalation at /auth/token", async () => {
    const client = await oauthClient(["conversations:read"]);
    const res = await tokenRequest({
      grant_type: "client_credentials",
      client_id: client.client_id,
      client_secret: client.client_secret,
      scope: "conversations:read channels:admin",
    });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe("invalid_scope");
  });

  it("rejects unknown scopes when registering a client", async () => {
    const res = await call(t.baseUrl, "POST", "/v1/oauth-clients", {
      key: tenant.key,
      body: { name: "x", scopes: ["root"] },
    });
    expect(res.status).toBe(400);
    expect(res.body.details[0].debug.field).toBe("scopes[0]");
  });
});

describe("refresh and revoke", () => {
  it("rotates refresh tokens and revokes the whole family when a rotated one is reused", async () => {
    const first = await accessToken(["conversations:read", "conversations:write"]);
    const second = await call(t.baseUrl, "POST", "/auth/refresh", { body: { refresh_token: first.refresh_token } });
    expect(second.status).toBe(200);
    expect(second.body.refresh_token).not.toBe(first.refresh_token);
    expect(second.body.scope).toBe("conversations:read conversations:write");
    const reuse = await call(t.baseUrl, "POST", "/auth/refresh", { body: { refresh_token: first.refresh_token } });
    expect(reuse.status).toBe(400);
    expect(reuse.body.error).toBe("invalid_grant");
    // The thief's reuse also killed the legitimate successor.
    const successor = await call(t.baseUrl, "POST", "/auth/refresh", {
      body: { refresh_token: second.body.refresh_token },
    });
    expect(successor.status).toBe(400);
    expect(successor.body.error).toBe("invalid_grant");
  });

  it("narrows scope at refresh but never widens it", async () => {
    const grant = await accessToken(["conversations:read"]);
    const wider = await call(t.baseUrl, "POST", "/auth/refresh", {
      body: { refresh_token: grant.refresh_token, scope: "conversations:read channels:admin" },
    });
    expect(wider.status).toBe(400);
    expect(wider.body.error).toBe("invalid_scope");
    // A refused refresh changed nothing: the token still works.
    const same = await call(t.baseUrl, "POST", "/auth/refresh", { body: { refresh_token: grant.refresh_token } });
    expect(same.status).toBe(200);
  });

  it("ignores a bearer token sent along to the open /auth endpoints", async () => {
    const grant = await accessToken(["conversations:read"]);
    const res = await call(t.baseUrl, "POST", "/auth/refresh", {
      token: grant.access_token,
      body: { refresh_token: grant.refresh_token },
    });
    expect(res.status).toBe(200);
    const revoke = await call(t.baseUrl, "POST", "/auth/revoke", {
      token: "garbage",
      body: { refresh_token: "cvr_x" },
    });
    expect(revoke.status).toBe(200);
  });

  it("revokes a refresh token and answers 200 for unknown ones (RFC 7009)", async () => {
    const grant = await accessToken(["conversations:read"]);
    expect(
      (await call(t.baseUrl, "POST", "/auth/revoke", { body: { refresh_token: grant.refresh_token } })).status,
    ).toBe(200);
    expect((await call(t.baseUrl, "POST", "/auth/revoke", { body: { refresh_token: "cvr_unknown" } })).status).toBe(
      200,
    );
    const after = await call(t.baseUrl, "POST", "/auth/refresh", { body: { refresh_token: grant.refresh_token } });
    expect(after.body.error).toBe("invalid_grant");
    const missing = await call(t.baseUrl, "POST", "/auth/refresh", { body: {} });
    expect(missing.status).toBe(400);
    expect(missing.body.error).toBe("invalid_request");
  });

  it("disabling a client stops its secret and its refresh tokens", async () => {
    const client = await oauthClient(["conversations:read"]);
    const grant = await tokenRequest({
      grant_type: "client_credentials",
      client_id: client.client_id,
      client_secret: client.client_secret,
    });
    const disabled = await call(t.baseUrl, "POST", `/v1/oauth-clients/${client.client_id}/disable`, {
      key: tenant.key,
    });
    expect(disabled.body.disabled).toBe(true);
    expect(
      (await call(t.baseUrl, "POST", "/auth/refresh", { body: { refresh_token: grant.body.refresh_token } })).status,
    ).toBe(400);
    const again = await tokenRequest({
      grant_type: "client_credentials",
      client_id: client.client_id,
      client_secret: client.client_secret,
    });
    expect(again.status).toBe(401);
  });

  it("rotates a client secret", async () => {
    const client = await oauthClient(["conversations:read"]);
    const rotated = await call(t.baseUrl, "POST", `/v1/oauth-clients/${client.client_id}/rotate-secret`, {
      key: tenant.key,
    });
    expect(rotated.body.client_secret).not.toBe(client.client_secret);
    const old = await tokenRequest({
      grant_type: "client_credentials",
      client_id: client.client_id,
      client_secret: client.client_secret,
    });
    expect(old.status).toBe(401);
    const fresh = await tokenRequest({
      grant_type: "client_credentials",
      client_id: client.client_id,
      client_secret: rotated.body.client_secret,
    });
    expect(fresh.status).toBe(200);
    const list = await call(t.baseUrl, "GET", "/v1/oauth-clients", { key: tenant.key });
    expect(JSON.stringify(list.body)).not.toContain(rotated.body.client_secret);
    const other = await f.tenant("Other");
    expect(
      (await call(t.baseUrl, "POST", `/v1/oauth-clients/${client.client_id}/disable`, { key: other.key })).status,
    ).toBe(404);
  });
});

describe("attacks on bearer tokens", () => {
  const now = () => Math.floor(Date.now() / 1000);
  const attacks: [string, () => Promise<string>][] = [
    [
      "alg none",
      async () => {
        const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
        return `${enc({ alg: "none", typ: "JWT" })}.${enc({ sub: "x", tenant_id: tenant.id, token_use: "access", scope: "conversations:read", exp: now() + 60, iat: now(), nbf: now(), iss: t.app.config.publicUrl, aud: "converger", jti: "j" })}.`;
      },
    ],
    [
      "HS256 signed with our public key",
      async () => {
        const jwks = (await call(t.baseUrl, "GET", "/.well-known/jwks.json")).body;
        const secret = new TextEncoder().encode(JSON.stringify(jwks.keys[0]));
        return new SignJWT({ tenant_id: tenant.id, token_use: "access", scope: "conversations:read" })
          .setProtectedHeader({ alg: "HS256", kid: jwks.keys[0].kid })
          .setIssuer(t.app.config.publicUrl)
          .setAudience("converger")
          .setSubject("x")
          .setIssuedAt()
          .setNotBefore(now())
          .setExpirationTime("5m")
          .setJti("j")
          .sign(secret);
      },
    ],
    [
      "a key we do not know",
      async () => {
        const { privateKey } = await generateKeyPair("ES256");
        return new SignJWT({ tenant_id: tenant.id, token_use: "access", scope: "conversations:read" })
          .setProtectedHeader({ alg: "ES256", kid: "attacker" })
          .setIssuer(t.app.config.publicUrl)
          .setAudience("converger")
          .setSubject("x")
          .setIssuedAt()
          .setNotBefore(now())
          .setExpirationTime("5m")
          .setJti("j")
          .sign(privateKey);
      },
    ],
    ["a kid naming a file", () => forge(t, { claims: { tenant_id: tenant.id }, kid: "../../dev/null" })],
    ["a kid holding SQL", () => forge(t, { claims: { tenant_id: tenant.id }, kid: "x' OR '1'='1" })],
    ["an expired token", () => forge(t, { claims: { tenant_id: tenant.id }, exp: now() - 120 })],
    ["nbf in the future", () => forge(t, { claims: { tenant_id: tenant.id }, nbf: now() + 3600 })],
    ["no exp", () => forge(t, { claims: { tenant_id: tenant.id }, exp: null })],
    ["the wrong audience", () => forge(t, { claims: { tenant_id: tenant.id }, aud: "someone-else" })],
    ["the wrong issuer", () => forge(t, { claims: { tenant_id: tenant.id }, iss: "https://evil.example" })],
    ["garbage", async () => "not.a.jwt"],
  ];

  it.each(attacks)("answers %s with 401 invalid_token and changes nothing", async (_name, make) => {
    const token = await make();
    const before = await t.db.query("SELECT count(*)::int AS n FROM channels");
    for (const [method, path] of [
      ["GET", "/v1/conversations"],
      ["POST", "/v1/channels"],
    ] as const) {
      const res = await call(t.baseUrl, method, path, {
        token,
        body: method === "POST" ? { name: "x", type: "echo" } : undefined,
      });
      expect(res.status, `${method} ${path}`).toBe(401);
      expect(res.headers.get("www-authenticate")).toContain('error="invalid_token"');
      expect(res.body.code).toBe("unauthenticated");
    }
    const after = await t.db.query("SELECT count(*)::int AS n FROM channels");
    expect(after.rows[0].n).toBe(before.rows[0].n);
    const audit = await t.db.query("SELECT reason FROM audit_events WHERE kind = 'jwt'");
    expect(JSON.stringify(audit.rows)).not.toContain(token);
  });

  it("accepts a token forged with the real key and good claims (the harness itself is sound)", async () => {
    const token = await forge(t, { claims: { tenant_id: tenant.id } });
    expect((await call(t.baseUrl, "GET", "/v1/conversations", { token })).status).toBe(200);
  });

  it("answers 403 for a valid token of an inactive tenant", async () => {
    const sleepy = await f.tenant("Sleepy");
    const token = await forge(t, { claims: { tenant_id: sleepy.id } });
    await call(t.baseUrl, "PATCH", `/admin/v1/tenants/${sleepy.id}`, {
      token: ADMIN_TOKEN,
      body: { status: "inactive" },
    });
    expect((await call(t.baseUrl, "GET", "/v1/conversations", { token })).status).toBe(403);
  });
});

describe("audit", () => {
  it("records failed API key and admin attempts with kind and address, never the secret", async () => {
    const badKey = `cvg_${"Z".repeat(43)}`;
    await call(t.baseUrl, "GET", "/v1/channels", { key: badKey });
    await call(t.baseUrl, "GET", "/admin/v1/tenants", { token: "wrong-admin-token" });
    await expect
      .poll(async () => (await t.db.query("SELECT kind FROM audit_events WHERE kind IN ('api_key', 'admin')")).rowCount)
      .toBeGreaterThanOrEqual(2);
    const rows = await t.db.query("SELECT * FROM audit_events WHERE kind IN ('api_key', 'admin')");
    for (const row of rows.rows) expect(row.source_ip).toBe("127.0.0.1");
    const text = JSON.stringify(rows.rows);
    expect(text).not.toContain(badKey);
    expect(text).not.toContain("wrong-admin-token");
  });
});

describe("signing keys and JWKS", () => {
  it("publishes keys that a third party verifies our tokens with", async () => {
    const { access_token } = await accessToken(["conversations:read"]);
    const jwks = await call(t.baseUrl, "GET", "/.well-known/jwks.json");
    expect(jwks.status).toBe(200);
    for (const key of jwks.body.keys) {
      expect(key).toMatchObject({ kty: "EC", crv: "P-256", alg: "ES256", use: "sig" });
      expect(key.d).toBeUndefined();
    }
    const { payload } = await jwtVerify(access_token, createLocalJWKSet(jwks.body as { keys: JWK[] }), {
      issuer: t.app.config.publicUrl,
      audience: "converger",
    });
    expect(payload.tenant_id).toBe(tenant.id);
  });

  it("rotates on demand: the new key signs once published, old tokens keep working", async () => {
    const kidOf = (token: string) => JSON.parse(Buffer.from(token.split(".")[0] as string, "base64url").toString()).kid;
    const old = await accessToken(["conversations:read"]);
    const oldKid = kidOf(old.access_token);
    const rotated = await call(t.baseUrl, "POST", "/admin/v1/signing-keys/rotate", { token: ADMIN_TOKEN });
    expect(rotated.status).toBe(200);
    expect(rotated.body.kid).not.toBe(oldKid);
    // Published but not yet signing: verifiers elsewhere get time to load it.
    expect(kidOf((await accessToken(["conversations:read"])).access_token)).toBe(oldKid);
    // The new key starts signing once its publish delay is over: wait for that, not for a fixed time.
    let fresh = old;
    await expect
      .poll(
        async () => {
          fresh = await accessToken(["conversations:read"]);
          return kidOf(fresh.access_token);
        },
        { timeout: KEY_PUBLISH_DELAY_MS + 5_000, interval: 250 },
      )
      .toBe(rotated.body.kid);
    expect((await call(t.baseUrl, "GET", "/v1/conversations", { token: old.access_token })).status).toBe(200);
    expect((await call(t.baseUrl, "GET", "/v1/conversations", { token: fresh.access_token })).status).toBe(200);
    const kids = (await call(t.baseUrl, "GET", "/.well-known/jwks.json")).body.keys.map((k: { kid: string }) => k.kid);
    expect(kids).toEqual(expect.arrayContaining([oldKid, rotated.body.kid]));
    const stored = await t.db.query("SELECT private_jwk_enc::text AS enc FROM signing_keys");
    expect(JSON.stringify(stored.rows)).not.toContain('"d"');
  });

  it("stops verifying a retired key once its grace period is over", async () => {
    const token = await accessToken(["conversations:read"]);
    const kid = JSON.parse(Buffer.from(token.access_token.split(".")[0] as string, "base64url").toString()).kid;
    await call(t.baseUrl, "POST", "/admin/v1/signing-keys/rotate", { token: ADMIN_TOKEN });
    await t.db.query("UPDATE signing_keys SET verify_until = now() - interval '1 second' WHERE kid = $1", [kid]);
    const jwks = await call(t.baseUrl, "GET", "/.well-known/jwks.json");
    expect(jwks.body.keys.map((k: { kid: string }) => k.kid)).not.toContain(kid);
  });
});
