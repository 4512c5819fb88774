import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../services/common/config.js";
import { fixtures, startTestApp, type TestApp } from "./helpers/app.js";

const SITE = "https://app.example.com";
let t: TestApp;
let bare: TestApp;
let key: string;

beforeAll(async () => {
  // A low address limit: preflights must never use it up.
  t = await startTestApp({ CORS_ORIGINS: `${SITE}, http://localhost:3000`, RATE_LIMIT_IP_PER_MINUTE: "3" });
  bare = await startTestApp();
  key = (await fixtures(t.baseUrl).tenant()).key;
});
afterAll(async () => {
  await t?.stop();
  await bare?.stop();
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
}

/** node:http, since fetch will not send an Origin of our choosing. */
function send(app: TestApp, method: string, path: string, headers: Record<string, string>, body?: string) {
  return new Promise<Answer>((resolve, reject) => {
    const req = request(`${app.baseUrl}${path}`, { method, headers }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

const preflight = (app: TestApp, path: string, origin: string, method: string, requested: string) =>
  send(app, "OPTIONS", path, {
    origin,
    "access-control-request-method": method,
    "access-control-request-headers": requested,
  });

const list = (value: unknown) =>
  String(value ?? "")
    .split(",")
    .map((s) => s.trim().toLowerCase());
const grants = (answer: Answer) => Object.keys(answer.headers).filter((name) => name.startsWith("access-control-"));

function expectGranted(answer: Answer, method: string, requested: string) {
  expect(answer.status).toBe(204);
  expect(answer.headers["access-control-allow-origin"]).toBe(SITE);
  expect(list(answer.headers["access-control-allow-methods"])).toContain(method);
  expect(list(answer.headers["access-control-allow-headers"])).toEqual(expect.arrayContaining(list(requested)));
  expect(list(answer.headers.vary)).toContain("origin");
  expect(answer.headers["access-control-allow-credentials"]).toBeUndefined();
  expect(Number(answer.headers["access-control-max-age"])).toBeGreaterThan(0);
}

describe("CORS preflight for a listed origin", () => {
  it("grants a REST route its methods and headers, without credentials or a rate limit", async () => {
    const requested = "x-api-key, content-type, idempotency-key, authorization";
    for (let i = 0; i < 6; i++) {
      expectGranted(await preflight(t, "/v1/conversations/c1/activities", SITE, "POST", requested), "post", requested);
    }
  });

  it("grants a Connect route the Connect and gRPC-Web headers", async () => {
    const requested =
      "connect-protocol-version, connect-timeout-ms, content-type, authorization, x-grpc-web, x-user-agent";
    const answer = await preflight(t, "/converger.v1.ConversationsService/ListActivities", SITE, "POST", requested);
    expectGranted(answer, "post", requested);
  });

  it("grants the tus endpoint its headers, and exposes tus answers to the page", async () => {
    const requested = "tus-resumable, upload-length, upload-metadata, upload-offset, x-api-key, content-type";
    expectGranted(await preflight(t, "/v1/tus/", SITE, "POST", requested), "post", requested);
    expectGranted(await preflight(t, "/v1/tus/some-id", SITE, "PATCH", requested), "patch", requested);
    const created = await send(t, "POST", "/v1/tus/", {
      origin: SITE,
      "x-api-key": key,
      "tus-resumable": "1.0.0",
      "upload-length": "5",
      "upload-metadata": `filename ${Buffer.from("a.txt").toString("base64")},filetype ${Buffer.from("text/plain").toString("base64")}`,
    });
    expect(created.status).toBe(201);
    expect(created.headers["access-control-allow-origin"]).toBe(SITE);
    const exposed = list(created.headers["access-control-expose-headers"]);
    expect(exposed).toEqual(expect.arrayContaining(["location", "upload-offset", "tus-resumable", "upload-length"]));
  });
});

describe("CORS on actual answers", () => {
  it("names the listed origin on successes and errors alike, and says the answer varies by Origin", async () => {
    const ok = await send(t, "GET", "/v1/conversations", { origin: SITE, "x-api-key": key });
    expect(ok.status).toBe(200);
    expect(ok.headers["access-control-allow-origin"]).toBe(SITE);
    expect(list(ok.headers["access-control-expose-headers"])).toEqual(
      expect.arrayContaining(["x-request-id", "ratelimit", "retry-after", "www-authenticate", "idempotent-replayed"]),
    );
    expect(list(ok.headers.vary)).toContain("origin");
    expect(ok.headers["access-control-allow-credentials"]).toBeUndefined();
    const anonymous = await send(t, "GET", "/v1/conversations", { origin: "http://localhost:3000" });
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers["access-control-allow-origin"]).toBe("http://localhost:3000");
    const connect = await send(
      t,
      "POST",
      "/converger.v1.ConversationsService/ListConversations",
      { origin: SITE, "x-api-key": key, "content-type": "application/json", "connect-protocol-version": "1" },
      "{}",
    );
    expect(connect.status).toBe(200);
    expect(connect.headers["access-control-allow-origin"]).toBe(SITE);
  });
});

describe("CORS refusals", () => {
  const strangers = [
    "https://evil.example.com",
    "null",
    "http://app.example.com", // scheme
    "https://app.example.com:8443", // port
    "https://APP.example.com", // case
    "https://app.example.com.evil.example", // suffix
    `${SITE}/`,
  ];

  it("answers a preflight from any other origin 403 without a single grant", async () => {
    for (const origin of strangers) {
      const answer = await preflight(t, "/v1/conversations", origin, "POST", "x-api-key, content-type");
      expect(answer.status, origin).toBe(403);
      expect(grants(answer), origin).toEqual([]);
      expect(list(answer.headers.vary), origin).toContain("origin");
    }
  });

  it("grants nothing on the actual answers to another origin", async () => {
    for (const origin of strangers) {
      const answer = await send(t, "GET", "/v1/conversations", { origin, "x-api-key": key });
      expect(answer.status, origin).toBe(200);
      expect(grants(answer), origin).toEqual([]);
    }
  });

  it("grants nothing to anyone without CORS_ORIGINS, and leaves tus discovery as it was", async () => {
    const answer = await preflight(bare, "/v1/conversations", SITE, "POST", "x-api-key");
    expect(answer.status).toBe(403);
    expect(grants(answer)).toEqual([]);
    const actual = await send(bare, "GET", "/healthz", { origin: SITE });
    expect(actual.status).toBe(200);
    expect(grants(actual)).toEqual([]);
    expect(actual.headers.vary).toBeUndefined();
    const discovery = await send(bare, "OPTIONS", "/v1/tus/", { origin: SITE });
    expect(discovery.status).toBe(204);
    expect(discovery.headers["tus-version"]).toBe("1.0.0");
  });

  it("refuses CORS_ORIGINS entries that are not one exact origin, and normalizes the rest", () => {
    for (const entry of [
      "*",
      "null",
      "https://a.example.com/app",
      "https://u:p@a.example.com",
      "ftp://a.example.com",
    ]) {
      expect(() => loadConfig({ CORS_ORIGINS: entry }), entry).toThrow(/CORS_ORIGINS/);
    }
    expect(loadConfig({ CORS_ORIGINS: "https://A.example.com:443/, http://b.example.com:8080" }).corsOrigins).toEqual([
      "https://a.example.com",
      "http://b.example.com:8080",
    ]);
  });
});
