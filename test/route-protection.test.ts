import { getOption, hasOption } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { access, PrincipalKind } from "../gen/converger/v1/options_pb.js";
import { buildRouteTable, type RpcRoute } from "../services/gateway/index.js";
import { REGISTRY } from "../services/host/registry.js";
import { call, fixtures, startTestApp, type TestApp } from "./helpers/app.js";
import { forge } from "./helpers/tokens.js";

let t: TestApp;
let tenantId: string;
beforeAll(async () => {
  t = await startTestApp();
  tenantId = (await fixtures(t.baseUrl).tenant()).id;
});
afterAll(() => t?.stop());

const ID = "7d0e4d4c-1f63-4b53-8f7d-3f3b1c1f0a11";
const table = buildRouteTable(
  Object.values(REGISTRY).flatMap((r) => r?.services ?? []),
  [],
);
/** Every REST route an OAuth access token may call, with the scope it needs. */
const oauthRoutes = table.entries
  .filter((e): e is RpcRoute => e.kind === "rpc")
  .map((route) => ({ route, rule: hasOption(route.method, access) ? getOption(route.method, access) : undefined }))
  .filter(({ rule }) => rule?.allow.includes(PrincipalKind.OAUTH_CLIENT))
  .map(({ route, rule }) => ({
    verb: route.verb,
    path: `/${route.segments.map((s) => ("literal" in s ? s.literal : ID)).join("/")}`,
    scope: rule?.scope ?? "",
  }));

describe("every protected REST route", () => {
  it("is covered by this test", () => {
    expect(oauthRoutes.length).toBeGreaterThanOrEqual(15);
    expect(oauthRoutes.every((r) => r.scope)).toBe(true);
  });

  it.each(oauthRoutes)(
    "$verb $path rejects a missing, an expired and a wrong-scope token",
    async ({ verb, path, scope }) => {
      const body = verb === "GET" ? undefined : {};
      const missing = await call(t.baseUrl, verb, path, { body });
      expect(missing.status).toBe(401);
      expect(missing.headers.get("www-authenticate")).toMatch(/^Bearer/);

      const expired = await forge(t, {
        claims: { tenant_id: tenantId, scope },
        exp: Math.floor(Date.now() / 1000) - 60,
      });
      expect((await call(t.baseUrl, verb, path, { token: expired, body })).status).toBe(401);

      const otherScope = scope === "files:write" ? "deliveries:read" : "files:write";
      const wrong = await forge(t, { claims: { tenant_id: tenantId, scope: otherScope } });
      const res = await call(t.baseUrl, verb, path, { token: wrong, body });
      expect(res.status).toBe(403);
      expect(res.body.message).toContain(scope);
    },
  );
});
