import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_TOKEN, call, fixtures, startTestApp, type TestApp } from "./helpers/app.js";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t?.stop());

describe("operator API", () => {
  it("creates a tenant and shows its API key once", async () => {
    const res = await call(t.baseUrl, "POST", "/admin/v1/tenants", { token: ADMIN_TOKEN, body: { name: "Globex" } });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ name: "Globex", status: "active" });
    expect(res.body.api_key).toMatch(/^cvg_[A-Za-z0-9_-]{43}$/);
    const got = await call(t.baseUrl, "GET", `/admin/v1/tenants/${res.body.id}`, { token: ADMIN_TOKEN });
    expect(got.status).toBe(200);
    expect(got.body.api_key).toBeUndefined();
    const stored = await t.db.query("SELECT api_key_hash FROM tenants WHERE id = $1", [res.body.id]);
    expect(stored.rows[0].api_key_hash.length).toBe(32);
    expect(JSON.stringify(stored.rows[0])).not.toContain(res.body.api_key);
  });

  it("lists tenants newest first with cursor and offset paging", async () => {
    for (const name of ["p1", "p2", "p3"]) {
      await call(t.baseUrl, "POST", "/admin/v1/tenants", { token: ADMIN_TOKEN, body: { name } });
    }
    const first = await call(t.baseUrl, "GET", "/admin/v1/tenants?limit=2", { token: ADMIN_TOKEN });
    expect(first.body.tenants.map((x: { name: string }) => x.name)).toEqual(["p3", "p2"]);
    const second = await call(t.baseUrl, "GET", `/admin/v1/tenants?limit=2&cursor=${first.body.next_cursor}`, {
      token: ADMIN_TOKEN,
    });
    expect(second.body.tenants[0].name).toBe("p1");
    const offset = await call(t.baseUrl, "GET", "/admin/v1/tenants?limit=1&offset=2", { token: ADMIN_TOKEN });
    expect(offset.body.tenants[0].name).toBe("p1");
    const bad = await call(t.baseUrl, "GET", "/admin/v1/tenants?cursor=garbage", { token: ADMIN_TOKEN });
    expect(bad.status).toBe(400);
    const tooMany = await call(t.baseUrl, "GET", "/admin/v1/tenants?limit=101", { token: ADMIN_TOKEN });
    expect(tooMany.status).toBe(400);
  });

  it("answers 401 with WWW-Authenticate for a missing or wrong admin token", async () => {
    const missing = await call(t.baseUrl, "GET", "/admin/v1/tenants");
    expect(missing.status).toBe(401);
    expect(missing.headers.get("www-authenticate")).toMatch(/^Bearer/);
    const wrong = await call(t.baseUrl, "GET", "/admin/v1/tenants", { token: "nope" });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get("www-authenticate")).toContain('error="invalid_token"');
  });

  it("answers an unknown tenant with 404 and a malformed id with 400", async () => {
    const unknown = await call(t.baseUrl, "GET", "/admin/v1/tenants/00000000-0000-4000-8000-000000000000", {
      token: ADMIN_TOKEN,
    });
    expect(unknown.status).toBe(404);
    const bad = await call(t.baseUrl, "GET", "/admin/v1/tenants/123", { token: ADMIN_TOKEN });
    expect(bad.status).toBe(400);
  });

  it("blocks every call of an inactive tenant with 403 and lets it back when reactivated", async () => {
    const f = fixtures(t.baseUrl);
    const tenant = await f.tenant("Sleepy");
    const off = await call(t.baseUrl, "PATCH", `/admin/v1/tenants/${tenant.id}`, {
      token: ADMIN_TOKEN,
      body: { status: "inactive" },
    });
    expect(off.body.status).toBe("inactive");
    for (const [method, path] of [
      ["GET", "/v1/channels"],
      ["GET", "/v1/conversations"],
      ["GET", "/v1/events"],
    ] as const) {
      const res = await call(t.baseUrl, method, path, { key: tenant.key });
      expect(res.status, path).toBe(403);
      expect(res.body.code).toBe("permission_denied");
    }
    await call(t.baseUrl, "PATCH", `/admin/v1/tenants/${tenant.id}`, {
      token: ADMIN_TOKEN,
      body: { status: "active" },
    });
    expect((await call(t.baseUrl, "GET", "/v1/channels", { key: tenant.key })).status).toBe(200);
  });

  it("rotates the API key: the old one stops working at once", async () => {
    const tenant = await fixtures(t.baseUrl).tenant("Rotor");
    const rotated = await call(t.baseUrl, "POST", `/admin/v1/tenants/${tenant.id}/rotate-key`, { token: ADMIN_TOKEN });
    expect(rotated.status).toBe(200);
    expect(rotated.body.api_key).not.toBe(tenant.key);
    expect((await call(t.baseUrl, "GET", "/v1/channels", { key: tenant.key })).status).toBe(401);
    expect((await call(t.baseUrl, "GET", "/v1/channels", { key: rotated.body.api_key })).status).toBe(200);
  });

  it("rejects a blank name with 400", async () => {
    const res = await call(t.baseUrl, "POST", "/admin/v1/tenants", { token: ADMIN_TOKEN, body: { name: "   " } });
    expect(res.status).toBe(400);
    expect(res.body.details[0].debug).toEqual({ field: "name", description: "must not be blank" });
  });

  it("rejects an unknown status word with 400 naming the field", async () => {
    const tenant = await fixtures(t.baseUrl).tenant();
    const res = await call(t.baseUrl, "PATCH", `/admin/v1/tenants/${tenant.id}`, {
      token: ADMIN_TOKEN,
      body: { status: "paused" },
    });
    expect(res.status).toBe(400);
    expect(res.body.details[0].debug.field).toBe("status");
  });
});

describe("API keys", () => {
  it("answers a missing, malformed, wrong-length or unknown key with 401 and WWW-Authenticate", async () => {
    const unknown = `cvg_${"A".repeat(43)}`;
    for (const key of [undefined, "cvg_short", `${unknown}extra`, "x".repeat(47), unknown]) {
      const res = await call(t.baseUrl, "GET", "/v1/channels", { key });
      expect(res.status, String(key)).toBe(401);
      expect(res.headers.get("www-authenticate")).toMatch(/^Bearer realm="converger"/);
      expect(res.body.code).toBe("unauthenticated");
    }
  });

  it("does not accept an API key on operator routes", async () => {
    const tenant = await fixtures(t.baseUrl).tenant();
    const res = await call(t.baseUrl, "GET", "/admin/v1/tenants", { key: tenant.key });
    expect(res.status).toBe(401);
  });
});

describe("admin address allowlist", () => {
  let outside: TestApp;
  beforeAll(async () => {
    // Loopback is not in this list, so the test client counts as "elsewhere".
    outside = await startTestApp({ ADMIN_ALLOWED_IPS: "10.0.0.0/8" });
  });
  afterAll(() => outside?.stop());

  it("answers 403 to a request from another address even with the right token", async () => {
    const res = await call(outside.baseUrl, "GET", "/admin/v1/tenants", { token: ADMIN_TOKEN });
    expect(res.status).toBe(403);
    expect(res.body.code).toBe("permission_denied");
  });

  it("ignores a forged X-Forwarded-For from an untrusted peer", async () => {
    const res = await call(outside.baseUrl, "GET", "/admin/v1/tenants", {
      token: ADMIN_TOKEN,
      headers: { "x-forwarded-for": "10.1.2.3", "x-converger-client-ip": "10.1.2.3" },
    });
    expect(res.status).toBe(403);
  });

  it("believes X-Forwarded-For from a trusted proxy", async () => {
    const proxied = await startTestApp({ ADMIN_ALLOWED_IPS: "10.0.0.0/8", TRUSTED_PROXIES: "127.0.0.1" });
    try {
      const res = await call(proxied.baseUrl, "GET", "/admin/v1/tenants", {
        token: ADMIN_TOKEN,
        headers: { "x-forwarded-for": "10.1.2.3" },
      });
      expect(res.status).toBe(200);
    } finally {
      await proxied.stop();
    }
  });
});
