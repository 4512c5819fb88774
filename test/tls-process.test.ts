import http2 from "node:http2";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { TenantsService } from "../gen/converger/v1/tenants_pb.js";
import { ADMIN_TOKEN } from "./helpers/app.js";
import { createTestCa, installCertificate, servedCommonName, type TestCa } from "./helpers/certs.js";
import { createTestDatabase } from "./helpers/database.js";
import { httpsCall } from "./helpers/https.js";
import { freePort, type ServiceProcess, spawnService } from "./helpers/process.js";

let ca: TestCa;
const running: ServiceProcess[] = [];
beforeAll(() => {
  ca = createTestCa();
});
afterAll(async () => {
  await Promise.all(running.map((p) => p.stop()));
});

async function start(env: Record<string, string>, args: string[], readyLine?: RegExp) {
  const p = await spawnService({ ADMIN_TOKEN, ...env }, args, readyLine);
  running.push(p);
  return p;
}

/** The JSON log lines of a process with this message. */
function logLines(p: ServiceProcess, msg: string): Record<string, string>[] {
  return p
    .output()
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line))
    .filter((line) => line.msg === msg);
}

/** A wss socket trusting the test CA, with its frames, opened once connection_established arrived. */
async function openWss(url: string) {
  const ws = new WebSocket(url, { ca: ca.ca });
  const frames: Record<string, unknown>[] = [];
  ws.on("message", (data) => frames.push(JSON.parse(data.toString())));
  await new Promise((resolve, reject) => {
    ws.once("message", resolve);
    ws.once("error", reject);
  });
  const until = (type: string) => expect.poll(() => frames.some((f) => f.type === type)).toBe(true);
  const servedName = () => String((ws as unknown as { _socket: TLSSocket })._socket.getPeerCertificate().subject.CN);
  return { ws, frames, until, servedName };
}

/** One GET on an open HTTP/2 session: the status. */
function h2Status(session: http2.ClientHttp2Session, path: string, key: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":path": path, "x-api-key": key });
    stream.on("response", (headers) => resolve(Number(headers[":status"])));
    stream.on("error", reject);
    stream.resume();
  });
}

describe("TLS files at start-up", () => {
  it("exits 1 naming the file when a certificate or key is missing, unreadable or not a pair", async () => {
    const good = ca.issue("good");
    const other = ca.issue("other");
    const cases: [Record<string, string>, RegExp][] = [
      [
        { TLS_CERT_FILE: join(ca.dir, "missing.pem"), TLS_KEY_FILE: good.keyFile },
        /TLS_CERT_FILE \S+missing\.pem cannot be read \(ENOENT\)/,
      ],
      [{ TLS_CERT_FILE: good.certFile, TLS_KEY_FILE: ca.dir }, /TLS_KEY_FILE \S+ cannot be read \(EISDIR\)/],
      [
        { TLS_CERT_FILE: good.certFile, TLS_KEY_FILE: other.keyFile },
        /TLS_KEY_FILE \S+ is not the key of the certificate/,
      ],
      [{ TLS_CERT_FILE: good.keyFile, TLS_KEY_FILE: good.keyFile }, /cannot be used/],
    ];
    await Promise.all(
      cases.map(async ([env, message]) => {
        const port = String(await freePort());
        const started = spawnService({ ADMIN_TOKEN, PORT: port, ...env }, ["--services=gateway"], /^gateway /m);
        void started.then((p) => running.push(p)).catch(() => undefined);
        await expect(started).rejects.toThrow(/exited with 1 before ready/);
        await expect(started).rejects.toThrow(message);
      }),
    );
  }, 90_000);
});

describe("SIGHUP", () => {
  it("moves every listener to the new certificate, keeps open connections, and ignores a bad file", async () => {
    const served = { certFile: join(ca.dir, "served.pem"), keyFile: join(ca.dir, "served.key") };
    installCertificate(ca.issue("converger first"), served);
    const [port, wsPort, grpcPort] = [await freePort(), await freePort(), await freePort()];
    const p = await start(
      {
        DATABASE_URL: await createTestDatabase(),
        PORT: String(port),
        WS_PORT: String(wsPort),
        GRPC_PORT: String(grpcPort),
        TLS_CERT_FILE: served.certFile,
        TLS_KEY_FILE: served.keyFile,
        LOG_LEVEL: "info",
      },
      [],
      /^grpc /m,
    );
    expect(p.output()).toMatch(
      new RegExp(`^gateway https://127\\.0\\.0\\.1:${port}\\nedge wss://127\\.0\\.0\\.1:${wsPort}$`, "m"),
    );
    const base = `https://127.0.0.1:${port}`;
    const api = (method: string, path: string, options: Omit<Parameters<typeof httpsCall>[2], "ca"> = {}) =>
      httpsCall(`${base}${path}`, method, { ...options, ca: ca.ca });
    const key = (await api("POST", "/admin/v1/tenants", { token: ADMIN_TOKEN, body: { name: "rotating" } })).body
      .api_key;
    const channel = (await api("POST", "/v1/channels", { key, body: { name: "c", type: "websocket", config: {} } }))
      .body;
    const minted = (await api("POST", "/v1/tokens", { token: channel.secret, body: { user: { id: "u" } } })).body;
    const before = await openWss(minted.stream_url);
    const session = http2.connect(base, { ca: ca.ca });
    expect(await h2Status(session, "/v1/channels", key)).toBe(200);
    const ports = [port, wsPort, grpcPort];
    for (const listener of ports) expect(await servedCommonName(listener, ca.ca)).toBe("converger first");

    installCertificate(ca.issue("converger second"), served);
    p.proc.kill("SIGHUP");
    await expect
      .poll(() =>
        logLines(p, "TLS certificate reloaded")
          .map((line) => line.listener)
          .sort(),
      )
      .toEqual(["edge", "gateway", "grpc"]);
    for (const listener of ports) expect(await servedCommonName(listener, ca.ca)).toBe("converger second");
    const after = await openWss(minted.stream_url);
    expect(after.servedName()).toBe("converger second");

    // The connections made before the reload carry on, with the certificate they were made with.
    expect(await h2Status(session, "/v1/channels", key)).toBe(200);
    expect((session.socket as TLSSocket).getPeerCertificate().subject.CN).toBe("converger first");
    expect(before.servedName()).toBe("converger first");
    before.ws.send(JSON.stringify({ type: "ping" }));
    await before.until("pong");
    // Live frames reach sockets of the old certificate (the drained app) and of the new one alike.
    const posted = await api("POST", `/v1/conversations/${minted.conversation_id}/activities`, {
      key,
      body: { type: "message", text: "across the reload", from: { id: "agent" } },
    });
    expect(posted.status).toBe(201);
    await before.until("activity");
    await after.until("activity");
    const internal = createGrpcTransport({ baseUrl: `https://127.0.0.1:${grpcPort}`, nodeOptions: { ca: ca.ca } });
    const headers = { authorization: `Bearer ${ADMIN_TOKEN}` };
    const tenants = await createClient(TenantsService, internal).listTenants({ limit: 10 }, { headers });
    expect(tenants.tenants.map((tenant) => tenant.name)).toEqual(["rotating"]);

    // A key that is not the certificate's: logged, and every listener keeps serving the current pair.
    installCertificate({ certFile: served.certFile, keyFile: ca.issue("stranger").keyFile }, served);
    p.proc.kill("SIGHUP");
    await expect.poll(() => logLines(p, "TLS reload failed; keeping the current certificate")).toHaveLength(1);
    expect(logLines(p, "TLS reload failed; keeping the current certificate")[0]?.reason).toMatch(/is not the key/);
    for (const listener of ports) expect(await servedCommonName(listener, ca.ca)).toBe("converger second");
    expect(await h2Status(session, "/v1/channels", key)).toBe(200);
    session.close();
    before.ws.close();
    after.ws.close();
  }, 90_000);
});

describe("split processes over TLS", () => {
  it("calls the conversations process over gRPC with TLS, trusting only TLS_CA_FILE", async () => {
    const served = ca.issue("converger split");
    const tls = { TLS_CERT_FILE: served.certFile, TLS_KEY_FILE: served.keyFile };
    const grpcPort = await freePort();
    await start({ ...tls, DATABASE_URL: await createTestDatabase(), GRPC_PORT: String(grpcPort) }, [
      "--services=conversations",
    ]);
    const gatewayOn = async (extra: Record<string, string>) => {
      const port = await freePort();
      const env = { ...tls, ...extra, PORT: String(port), CONVERSATIONS_GRPC_URL: `https://127.0.0.1:${grpcPort}` };
      await start(env, ["--services=gateway"], /^gateway /m);
      return (body: unknown) =>
        httpsCall(`https://127.0.0.1:${port}/admin/v1/tenants`, "POST", { token: ADMIN_TOKEN, body, ca: ca.ca });
    };
    const trusting = await gatewayOn({ TLS_CA_FILE: ca.caFile });
    expect((await trusting({ name: "split over TLS" })).status).toBe(201);
    // The system CAs do not know the test CA: the same call fails rather than trust an unverified peer.
    const untrusting = await gatewayOn({});
    const refused = await untrusting({ name: "never stored" });
    expect(refused.status).toBe(503);
    // The client learns which service is away, never the TLS detail (that is in the log).
    expect(JSON.stringify(refused.body)).not.toMatch(/certificate|UNABLE_TO_VERIFY|self.signed/i);
    expect(running.at(-1)?.output()).toMatch(/"code":"UNABLE_TO_VERIFY_LEAF_SIGNATURE"/);
  }, 90_000);
});
