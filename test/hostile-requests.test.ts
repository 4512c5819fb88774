import { connect } from "node:net";
import { gzipSync } from "node:zlib";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ActivityType, ConversationsService, DirectoryService } from "../gen/converger/v1/conversations_pb.js";
import { call, fixtures, startTestApp, type TestApp } from "./helpers/app.js";

/** Sends bytes as they are (fetch would normalize the target) and resolves with the status line's code. */
function rawRequest(port: number, head: string, body: Buffer = Buffer.alloc(0)): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let answer = "";
    socket.setTimeout(5000, () => socket.destroy(new Error(`no answer to ${JSON.stringify(head.slice(0, 40))}`)));
    socket.on("data", (chunk) => {
      answer += chunk.toString("latin1");
      const status = /^HTTP\/1\.1 (\d{3})/.exec(answer);
      if (status) {
        resolve(Number(status[1]));
        socket.destroy();
      }
    });
    socket.on("error", reject);
    socket.on("close", () => reject(new Error(`closed without an answer: ${JSON.stringify(answer)}`)));
    socket.write(head);
    socket.write(body);
  });
}

describe("hostile requests", () => {
  let t: TestApp;
  let port: number;
  let key: string;
  let conversationId: string;
  beforeAll(async () => {
    t = await startTestApp();
    port = t.app.ports.gateway as number;
    const f = fixtures(t.baseUrl);
    key = (await f.tenant()).key;
    conversationId = (await f.conversation(key, (await f.channel(key)).id)).id;
  });
  afterAll(() => t.stop());

  it("answers request targets that URL parsing rejects with 4xx and stays up", async () => {
    const targets = ["//", "///", "//[", "//:80", "//%zz", "/\\", "//user@evil.example/v1/channels", "/%00", "/v1/%zz"];
    for (const target of targets) {
      const status = await rawRequest(port, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      expect(status, target).toBeGreaterThanOrEqual(400);
      expect(status, target).toBeLessThan(500);
    }
    expect(await rawRequest(port, "GET http://evil.example/v1/channels HTTP/1.1\r\nHost: x\r\n\r\n")).toBe(400);
    expect(await rawRequest(port, "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")).toBe(400);
    expect((await call(t.baseUrl, "GET", "/healthz")).status).toBe(200);
  });

  it("answers an RPC with a broken or missing Host with 400", async () => {
    const body = '{"refreshToken":"cvr_unknown"}';
    const rpc = (host: string, version = "1.1") =>
      rawRequest(
        port,
        `POST /converger.v1.AuthService/RevokeToken HTTP/${version}\r\n${host}Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
      );
    expect(await rpc("Host: [\r\n")).toBe(400);
    expect(await rpc("Host: x:99999\r\n")).toBe(400);
    expect(await rpc("", "1.0")).toBe(400);
    expect(await rpc("Host: x\r\n")).toBe(200);
  });

  it("never takes the internal token on the public port", async () => {
    const internal = { "content-type": "application/json", "x-converger-internal": t.app.config.internalToken };
    const viaGateway = await fetch(`${t.baseUrl}/converger.v1.DirectoryService/GetTenantStatus`, {
      method: "POST",
      headers: internal,
      body: "{}",
    });
    expect(viaGateway.status).toBe(401);
    const viaGrpcPort = await createClient(
      DirectoryService,
      createGrpcTransport({ baseUrl: `http://127.0.0.1:${t.app.ports.grpc}` }),
    ).getTenantStatus({ tenantId: "00000000-0000-4000-8000-000000000000" }, { headers: internal });
    expect(viaGrpcPort.exists).toBe(false);
  });

  it("refuses an anonymous Connect call with 401 without inflating its gzip body", async () => {
    // 200 MB of zeros in about 200 KB.
    const bomb = gzipSync(Buffer.alloc(200 * 1024 * 1024));
    const before = process.memoryUsage().rss;
    const res = await fetch(`${t.baseUrl}/converger.v1.ConversationsService/ListActivities`, {
      method: "POST",
      headers: { "content-type": "application/json", "content-encoding": "gzip" },
      body: bomb,
    });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { code: string }).code).toBe("unauthenticated");
    expect(process.memoryUsage().rss - before).toBeLessThan(100 * 1024 * 1024);
  });

  it("bounds what an authenticated Connect body may inflate to", async () => {
    const bomb = gzipSync(Buffer.from(`{"conversationId":"${conversationId}","pad":"${"a".repeat(5 * 1024 * 1024)}"}`));
    const before = process.memoryUsage().rss;
    const res = await fetch(`${t.baseUrl}/converger.v1.ConversationsService/ListActivities`, {
      method: "POST",
      headers: { "content-type": "application/json", "content-encoding": "gzip", "x-api-key": key },
      body: bomb,
    });
    expect(((await res.json()) as { code: string }).code).toBe("resource_exhausted");
    expect(process.memoryUsage().rss - before).toBeLessThan(100 * 1024 * 1024);
  });

  it("answers 413 to a Connect body declared over the cap, unread", async () => {
    const res = await fetch(`${t.baseUrl}/converger.v1.ConversationsService/ListActivities`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": key },
      body: Buffer.alloc(2 * 1024 * 1024, 0x20),
    });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { code: string }).code).toBe("resource_exhausted");
  });

  it("answers an anonymous gRPC-Web call in gRPC-Web, and an anonymous gRPC call with Unauthenticated", async () => {
    const web = await fetch(`${t.baseUrl}/converger.v1.ConversationsService/ListActivities`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
      body: Buffer.from([0, 0, 0, 0, 0]),
    });
    expect(web.status).toBe(200);
    expect(web.headers.get("grpc-status")).toBe(String(Code.Unauthenticated));

    const client = createClient(
      ConversationsService,
      createGrpcTransport({ baseUrl: `http://127.0.0.1:${t.app.ports.grpc}` }),
    );
    const refused = await client.listActivities({ conversationId }).catch((e: unknown) => ConnectError.from(e));
    expect(refused).toBeInstanceOf(ConnectError);
    expect((refused as ConnectError).code).toBe(Code.Unauthenticated);
    const listed = await client.listActivities({ conversationId }, { headers: { "x-api-key": key } });
    expect(listed.activities).toEqual([]);
  });

  it("answers a body that does not inflate or decode as the caller's mistake, in each protocol", async () => {
    const rpc = (headers: Record<string, string>, body: Buffer) =>
      fetch(`${t.baseUrl}/converger.v1.ConversationsService/ListActivities`, {
        method: "POST",
        headers: { "x-api-key": key, ...headers },
        body,
      });
    const badGzip = await rpc(
      { "content-type": "application/proto", "content-encoding": "gzip" },
      Buffer.from([31, 139, 8, 0]),
    );
    expect(badGzip.status).toBe(400);
    expect(await badGzip.json()).toMatchObject({ code: "invalid_argument", message: "the body is not valid gzip" });
    // Field 1 with wire type 3 (a group start) is not a ListActivitiesRequest.
    const badProto = await rpc({ "content-type": "application/proto" }, Buffer.from([0x0b, 0x00, 0x03]));
    expect(badProto.status).toBe(400);
    expect(((await badProto.json()) as { code: string }).code).toBe("invalid_argument");
    const badWeb = await rpc(
      { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
      Buffer.from([0, 0, 0, 0, 3, 0x0b, 0x00, 0x03]),
    );
    expect(badWeb.status).toBe(200);
    expect(Buffer.from(await badWeb.arrayBuffer()).toString("latin1")).toContain(
      `grpc-status: ${Code.InvalidArgument}`,
    );
  });

  it("bounds message size on the internal gRPC port", async () => {
    const client = createClient(
      ConversationsService,
      createGrpcTransport({ baseUrl: `http://127.0.0.1:${t.app.ports.grpc}` }),
    );
    const refused = await client
      .createActivity(
        { conversationId, type: ActivityType.MESSAGE, text: "x".repeat(5 * 1024 * 1024), from: { id: "a" } },
        { headers: { "x-api-key": key } },
      )
      .catch((e: unknown) => ConnectError.from(e));
    expect((refused as ConnectError).code).toBe(Code.ResourceExhausted);
    expect(
      (await call(t.baseUrl, "GET", `/v1/conversations/${conversationId}/activities`, { key })).body.activities,
    ).toEqual([]);
  });
});
