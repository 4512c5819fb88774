import http from "node:http";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { TenantsService } from "../gen/converger/v1/tenants_pb.js";
import { loadConfig } from "../services/common/config.js";
import { ADMIN_TOKEN, startTestApp, type TestApp } from "./helpers/app.js";
import { createTestCa, servedCommonName, type TestCa } from "./helpers/certs.js";
import { httpsCall } from "./helpers/https.js";
import { freePort } from "./helpers/process.js";

let ca: TestCa;
let t: TestApp;
let base: string;
let wsPort: number;
beforeAll(async () => {
  ca = createTestCa();
  const served = ca.issue("converger in-process");
  const port = await freePort();
  wsPort = await freePort();
  t = await startTestApp({
    PORT: String(port),
    WS_PORT: String(wsPort),
    TLS_CERT_FILE: served.certFile,
    TLS_KEY_FILE: served.keyFile,
  });
  base = `https://127.0.0.1:${port}`;
});
afterAll(() => t?.stop());

const api = (method: string, path: string, options: Omit<Parameters<typeof httpsCall>[2], "ca"> = {}) =>
  httpsCall(`${base}${path}`, method, { ...options, ca: ca.ca });

/** Resolves with the first frame of a wss socket that trusts `trusted`, or rejects with why the handshake failed. */
function firstWssFrame(url: string, trusted?: Buffer): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, trusted ? { ca: trusted } : {});
    ws.once("message", (data) => {
      resolve(JSON.parse(data.toString()));
      ws.close();
    });
    ws.once("error", reject);
  });
}

/** A plain-text HTTP/1.1 request to a TLS port: resolves with its status, or rejects as the server drops it. */
function plainGet(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: "/healthz", agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", reject);
  });
}

describe("TLS on every listener", () => {
  it("serves REST over HTTPS with Strict-Transport-Security to a client trusting the CA", async () => {
    const created = await api("POST", "/admin/v1/tenants", { token: ADMIN_TOKEN, body: { name: "TLS Co" } });
    expect(created.status).toBe(201);
    expect(created.headers.get("strict-transport-security")).toBe("max-age=31536000");
    const listed = await api("GET", "/v1/channels", { key: created.body.api_key });
    expect(listed.status).toBe(200);
    expect(listed.headers.get("strict-transport-security")).toBe("max-age=31536000");
    expect(await servedCommonName(t.app.ports.gateway as number, ca.ca)).toBe("converger in-process");
  });

  it("refuses a client that does not trust the CA, and plain HTTP, on the gateway, edge and gRPC ports", async () => {
    await expect(httpsCall(`${base}/v1/channels`, "GET", { ca: Buffer.from("") })).rejects.toThrow(/certificate/);
    for (const port of [t.app.ports.gateway, t.app.ports.edge, t.app.ports.grpc] as number[]) {
      await expect(plainGet(port), `port ${port}`).rejects.toThrow(/socket hang up|ECONNRESET/);
    }
  });

  it("answers Connect and gRPC over HTTP/2 (ALPN h2) on the gateway port", async () => {
    const headers = { authorization: `Bearer ${ADMIN_TOKEN}` };
    await api("POST", "/admin/v1/tenants", { token: ADMIN_TOKEN, body: { name: "h2 Co" } });
    const nodeOptions = { ca: ca.ca };
    for (const transport of [
      createGrpcTransport({ baseUrl: base, nodeOptions }),
      createConnectTransport({ baseUrl: base, httpVersion: "2", nodeOptions }),
    ]) {
      const res = await createClient(TenantsService, transport).listTenants({ limit: 100 }, { headers });
      expect(res.tenants.map((tenant) => tenant.name)).toContain("h2 Co");
    }
    expect(await servedCommonName(t.app.ports.gateway as number, ca.ca, "h2")).toBe("converger in-process");
  });

  it("hands out a wss stream_url that a client trusting the CA opens, and refuses one that does not", async () => {
    const tenant = (await api("POST", "/admin/v1/tenants", { token: ADMIN_TOKEN, body: { name: "wss Co" } })).body;
    const channel = (
      await api("POST", "/v1/channels", {
        key: tenant.api_key,
        body: { name: "site", type: "websocket", config: {} },
      })
    ).body;
    const minted = await api("POST", "/v1/tokens", { token: channel.secret, body: { user: { id: "alice" } } });
    expect(minted.status).toBe(201);
    expect(minted.body.stream_url).toBe(`wss://127.0.0.1:${wsPort}/ws?token=${minted.body.token}`);
    const frame = await firstWssFrame(minted.body.stream_url, ca.ca);
    expect(frame).toMatchObject({ type: "connection_established", conversation_id: minted.body.conversation_id });
    await expect(firstWssFrame(minted.body.stream_url)).rejects.toThrow(/certificate/);
  });

  it("hands out https download URLs and tus Locations that work over HTTPS", async () => {
    const tenant = (await api("POST", "/admin/v1/tenants", { token: ADMIN_TOKEN, body: { name: "files Co" } })).body;
    const key = tenant.api_key as string;
    const created = await api("POST", "/v1/tus/", {
      key,
      headers: {
        "tus-resumable": "1.0.0",
        "upload-length": "5",
        "upload-metadata": `filename ${Buffer.from("hello.txt").toString("base64")},filetype dGV4dC9wbGFpbg==`,
        "content-type": "application/offset+octet-stream",
      },
      body: Buffer.from("hello"),
    });
    expect(created.status).toBe(201);
    const location = new URL(created.headers.get("location") as string, base);
    expect(location.protocol).toBe("https:");
    const head = await httpsCall(location.href, "HEAD", { key, ca: ca.ca, headers: { "tus-resumable": "1.0.0" } });
    expect(head.headers.get("upload-offset")).toBe("5");
    const uploadId = location.pathname.split("/").pop() as string;
    let fileId = "";
    await expect
      .poll(async () => {
        const status = (await api("GET", `/v1/files/upload/${uploadId}/status`, { key })).body;
        fileId = status.file_id ?? "";
        return status.status;
      })
      .toBe("COMPLETED");

    const channel = (await api("POST", "/v1/channels", { key, body: { name: "c", type: "websocket", config: {} } }))
      .body;
    const conversation = (await api("POST", "/v1/conversations", { key, body: { channel_id: channel.id } })).body;
    const posted = await api("POST", `/v1/conversations/${conversation.id}/activities`, {
      key,
      body: { type: "message", text: "see file", from: { id: "agent" }, attachments: [{ file_id: fileId }] },
    });
    expect(posted.status).toBe(201);
    const url = posted.body.attachments[0].url as string;
    expect(url).toBe(`${base}/v1/files/${fileId}/content`);
    const content = await httpsCall(url, "GET", { key, ca: ca.ca });
    expect(content.status).toBe(200);
    expect(content.body).toBe("hello");
  });
});

describe("TLS configuration", () => {
  it("refuses a certificate without its key, and makes https/wss the defaults with both", () => {
    expect(() => loadConfig({ TLS_CERT_FILE: "/x/cert.pem" })).toThrow(/TLS_CERT_FILE and TLS_KEY_FILE/);
    expect(() => loadConfig({ TLS_KEY_FILE: "/x/key.pem" })).toThrow(/TLS_CERT_FILE and TLS_KEY_FILE/);
    const config = loadConfig({ TLS_CERT_FILE: "/x/cert.pem", TLS_KEY_FILE: "/x/key.pem", GRPC_PORT: "9443" }, [
      "--services=gateway",
    ]);
    expect(config.publicUrl).toBe("https://127.0.0.1:8080");
    expect(config.upstreams.conversations).toBe("https://127.0.0.1:9443");
    const plain = loadConfig({}, ["--services=gateway"]);
    expect(plain.publicUrl).toBe("http://127.0.0.1:8080");
    expect(plain.upstreams.conversations).toBe("http://127.0.0.1:9090");
  });
});
