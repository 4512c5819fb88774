import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { DescMethod } from "@bufbuild/protobuf";
import fc from "fast-check";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { REGISTRY } from "../services/host/registry.js";
import { ADMIN_TOKEN, call, fixtures, startTestApp, type TestApp } from "./helpers/app.js";
import { bomb } from "./helpers/bombs.js";
import type { RealIds } from "./helpers/fuzz-arbitraries.js";
import { connectRequestArb, KNOWN_ENCODINGS } from "./helpers/fuzz-connect.js";
import {
  type EdgeFixture,
  frameArb,
  type LiveSocket,
  openLive,
  upgradeArb,
  upgradeCases,
  waitFor,
} from "./helpers/fuzz-edge.js";
import { bombCases, hostileCases, hostileRequestArb } from "./helpers/fuzz-hostile.js";
import {
  credentialArb,
  expectAnswered,
  type FuzzCredentials,
  gatewayRoutes,
  hiddenServerError,
  REQUEST_TIMEOUT_MS,
  routeRequestArb,
  templateOf,
} from "./helpers/fuzz-http.js";
import { createFuzzReport, FUZZ_SEED, settle } from "./helpers/fuzz-report.js";
import { describeRequest, send } from "./helpers/raw-http.js";

// startTestApp raises the rate limits out of the way (the fuzz must reach handlers); sockets too.
const EDGE_CAPS = { WS_MAX_CONNECTIONS_PER_USER: "100000" };
// Time budgets (ms) per group; together about a minute.
const BUDGET = { routes: 20_000, hostile: 5_000, connect: 8_000, edgeUpgrade: 4_000, edgeFrames: 6_000 };
const BOMB_BYTES = 256 * 1024 * 1024;
const RSS_HEADROOM = 300 * 1024 * 1024;
const BOMB_ANSWER_MS = 2000;

// A real full GC before each bomb, so that RSS measures the server's expansion, not leftovers.
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const table = gatewayRoutes();
const connectMethods: DescMethod[] = Object.values(REGISTRY).flatMap((r) =>
  (r?.services ?? []).flatMap((s) => s.methods),
);
const report = createFuzzReport();

let t: TestApp;
let port: number;
let key: string;
let ids: RealIds;
let spare: RealIds;
let edge: EdgeFixture;
let credentials: FuzzCredentials;

beforeAll(async () => {
  t = await startTestApp(EDGE_CAPS);
  port = t.app.ports.gateway as number;
  const f = fixtures(t.baseUrl);
  const tenant = await f.tenant("Fuzz");
  key = tenant.key;
  // Paths name a second tenant, so that suspending or rotating it does not cut off the fuzz's own key.
  const target = await f.tenant("Fuzz target");
  const channel = await f.channel(key);
  const conversation = await f.conversation(key, channel.id);
  const activity = await f.message(key, conversation.id, "hello");
  const upload = await call(t.baseUrl, "POST", "/v1/files/initiate", {
    key,
    body: { filename: "a.txt", size: 10, content_type: "text/plain" },
  });
  ids = {
    tenant_id: target.id,
    channel_id: channel.id,
    conversation_id: conversation.id,
    activity_id: activity.body.id,
    upload_id: upload.body.upload_id,
  };
  const spareChannel = await f.channel(key);
  spare = { channel_id: spareChannel.id, conversation_id: (await f.conversation(key, spareChannel.id)).id };
  // The edge gets its own conversation: the fuzz may close the one above.
  const streamed = await f.conversation(key, channel.id);
  const token = await call(t.baseUrl, "POST", `/v1/conversations/${streamed.id}/tokens`, {
    key,
    body: { user: { id: "fuzz-user" } },
  });
  expect(token.status).toBe(201);
  edge = {
    clientToken: token.body.token,
    tenantId: tenant.id,
    conversationId: streamed.id,
    origin: new URL(t.app.config.publicUrl).origin,
  };
  const real = { key, admin: ADMIN_TOKEN, clientToken: edge.clientToken };
  credentials = { ...real, any: credentialArb(real) };
  console.log(`fuzz: seed ${FUZZ_SEED} (set FUZZ_SEED to replay another)`);
}, 120_000);

afterEach(() => report.idle());

afterAll(async () => {
  console.log(report.summary());
  report.dispose();
  await t?.stop();
});

/** fast-check settings of one property: seeded, bounded in runs and time. */
function budget(ms: number, numRuns = 100_000): fc.Parameters<unknown> {
  return { seed: FUZZ_SEED, numRuns, interruptAfterTimeLimit: ms, timeout: 8000, verbose: 1 };
}

describe("fuzz: REST route table", () => {
  const entries = table.entries;
  // Routes with more inputs get more of the time: they have more to break.
  const weightOf = (entry: (typeof entries)[number]) =>
    2 +
    entry.segments.filter((s) => "param" in s).length +
    (entry.kind === "rpc" ? entry.method.input.fields.length : 1);
  const totalWeight = entries.reduce((sum, entry) => sum + weightOf(entry), 0);
  it.each(entries.map((entry) => ({ name: templateOf(entry), entry })))(
    "$name answers hostile params, queries, bodies and credentials without 5xx",
    async ({ name, entry }) => {
      // Routes that close or reconfigure get spare fixtures, so the others keep working ones.
      const destructive = /\/close$|^PATCH \/v1\/channels|rotate-secret/.test(name);
      const arb = routeRequestArb(entry, destructive ? { ...ids, ...spare } : ids, credentials);
      await fc.assert(
        fc.asyncProperty(arb, async (request) => void (await expectAnswered(report, port, name, request))),
        budget((BUDGET.routes * weightOf(entry)) / totalWeight),
      );
    },
    20_000,
  );
});

describe("fuzz: hostile HTTP on raw sockets", () => {
  it("answers every listed hostile request with a status, never 5xx", async () => {
    const cases = hostileCases(key, ids.conversation_id as string);
    const failures: string[] = [];
    // A few at a time: a hang costs the per-request timeout once per batch, not once per case.
    for (let i = 0; i < cases.length; i += 6) {
      const batch = cases.slice(i, i + 6);
      const mark = report.crashes.length;
      const outcomes = await Promise.all(
        batch.map(({ label, request, options }) =>
          expectAnswered(report, port, label, request, { ...options, ignoreCrashes: true }).then(
            () => undefined,
            (error: Error) => error.message,
          ),
        ),
      );
      if (report.crashes.length === mark) {
        failures.push(...outcomes.filter((m): m is string => m !== undefined));
        continue;
      }
      // A crash names no request: replay the batch one by one (short timeout) to find the culprits.
      for (const { label, request, options } of batch) {
        await expectAnswered(report, port, label, request, {
          ...options,
          send: { ...options?.send, timeoutMs: 1000 },
        }).catch((error: Error) => failures.push(error.message));
      }
    }
    expect(failures).toEqual([]);
  }, 60_000);

  it("answers random hostile methods, targets and headers", async () => {
    await fc.assert(
      fc.asyncProperty(
        hostileRequestArb(key),
        async (request) => void (await expectAnswered(report, port, "raw", request)),
      ),
      budget(BUDGET.hostile),
    );
  }, 30_000);
});

describe("fuzz: Connect, gRPC-Web and compression", () => {
  it.each(connectMethods.map((method) => ({ name: `${method.parent.typeName}/${method.name}`, method })))(
    "$name answers hostile framing, encodings and bodies",
    async ({ name, method }) => {
      await fc.assert(
        fc.asyncProperty(connectRequestArb(method, ids, credentials), async ({ request, encoding }) => {
          await expectAnswered(report, port, name, request, { allow501: !KNOWN_ENCODINGS.has(encoding) });
        }),
        budget(BUDGET.connect / connectMethods.length),
      );
    },
    20_000,
  );

  it("refuses compression bombs with 4xx, quickly and without growing memory", async () => {
    const failures: string[] = [];
    for (const { label, request } of bombCases(
      await bomb("gzip", BOMB_BYTES),
      await bomb("br", BOMB_BYTES),
      key,
      ids.conversation_id as string,
    )) {
      gc();
      const before = process.memoryUsage().rss;
      let peak = before;
      const sampler = setInterval(() => {
        peak = Math.max(peak, process.memoryUsage().rss);
      }, 10);
      const res = await send(port, request, { timeoutMs: REQUEST_TIMEOUT_MS });
      await settle();
      clearInterval(sampler);
      peak = Math.max(peak, process.memoryUsage().rss);
      report.count(res.timedOut ? "timeout" : (res.status ?? "closed"));
      // gRPC-Web refuses with HTTP 200 and a non-zero grpc-status.
      const grpcStatus = /grpc-status: ?(\d+)/i.exec(res.head)?.[1];
      const refused = (res.status ?? 0) >= 400 && (res.status ?? 0) < 500;
      const refusedGrpc =
        res.status === 200 && grpcStatus !== undefined && grpcStatus !== "0" && !hiddenServerError(res.head);
      const grewMb = Math.round((peak - before) / 2 ** 20);
      const outcome = `${res.timedOut ? "timeout" : res.status}${grpcStatus ? ` grpc-status ${grpcStatus}` : ""} in ${Math.round(res.ms)} ms, RSS +${grewMb} MB`;
      if (!(refused || refusedGrpc) || res.ms > BOMB_ANSWER_MS || peak - before > RSS_HEADROOM) {
        failures.push(
          report.fail(
            `${label} → not refused quickly within bounded memory`,
            describeRequest(request),
            `${label}: ${outcome}`,
          ).message,
        );
      }
    }
    expect(failures).toEqual([]);
  }, 60_000);
});

describe("fuzz: WebSocket edge", () => {
  it("answers the listed hostile upgrades with 101 or 4xx", async () => {
    const failures: string[] = [];
    for (const { label, request } of upgradeCases(edge)) {
      await expectAnswered(report, t.app.ports.edge as number, label, request, { send: { untilHead: true } }).catch(
        (error: Error) => failures.push(error.message),
      );
    }
    expect(failures).toEqual([]);
  }, 60_000);

  it("answers random hostile upgrades with 101 or 4xx", async () => {
    const edgePort = t.app.ports.edge as number;
    await fc.assert(
      fc.asyncProperty(upgradeArb(edge), async ({ request, wellFormed }) => {
        const options = { send: { untilHead: true }, allowClose: !wellFormed };
        const status = await expectAnswered(report, edgePort, "upgrade", request, options);
        if (wellFormed && status !== 101 && (status === undefined || status < 400)) {
          throw report.fail(`upgrade → ${status}`, describeRequest(request), `upgrade answered ${status}`);
        }
      }),
      budget(BUDGET.edgeUpgrade),
    );
  }, 30_000);

  it("answers random frames with replies or a 1000/4xxx close, never an internal error", async () => {
    const url = `ws://127.0.0.1:${t.app.ports.edge}/ws?token=${edge.clientToken}`;
    const pool: LiveSocket[] = [];
    let turn = 0;
    await fc.assert(
      fc.asyncProperty(frameArb(edge), async (frame) => {
        const slot = turn++ % 3;
        let live = pool[slot];
        if (!live || live.closed) live = pool[slot] = await openLive(url);
        // Paced under the edge's 50 frames/s per socket (frame + ping each turn, three sockets).
        await new Promise((r) => setTimeout(r, 15));
        const from = live.frames.length;
        const mark = report.crashes.length;
        live.ws.send(frame);
        live.ws.send('{"type":"ping"}');
        const outcome = await waitFor(live, from, (f) => f.type === "pong", 5000);
        await settle();
        const shown =
          typeof frame === "string"
            ? JSON.stringify(frame.slice(0, 300))
            : `binary ${frame.toString("hex").slice(0, 200)}`;
        const crashes = report.crashesSince(mark);
        const internal = live.frames
          .slice(from)
          .find((f) => f.type === "error" && (f.code === "internal" || f.code === "unknown"));
        report.count(outcome === "closed" ? `ws:${live.closed?.code}` : `ws:${outcome}`);
        const tooBig = frame.length > 64 * 1024;
        const code = live.closed?.code ?? 0;
        if (crashes.length > 0) throw report.fail(`frame → ${crashes[0]}`, shown, crashes.join("; "));
        if (internal)
          throw report.fail(`frame → error ${internal.code}: ${internal.message}`, shown, JSON.stringify(internal));
        if (outcome === "timeout") throw report.fail("frame → no pong within 5 s", shown, "socket hung");
        if (
          outcome === "closed" &&
          !(
            code === 1000 ||
            code === 1001 ||
            code === 1009 ||
            (code >= 4000 && code < 5000) ||
            (tooBig && code === 1006)
          )
        ) {
          throw report.fail(`frame → close ${code}`, shown, `closed ${code} ${live.closed?.reason}`);
        }
      }),
      budget(BUDGET.edgeFrames),
    );
    for (const live of pool) live?.ws.close();
  }, 30_000);
});

describe("fuzz: aftermath", () => {
  it("leaves the process alive and healthy, with no crash and no finding", async () => {
    const health = await call(t.baseUrl, "GET", "/healthz");
    expect(health.status).toBe(200);
    const findings = [...report.findings.values()];
    if (findings.length > 0) {
      console.log(
        `fuzz findings (${findings.length}):\n${findings.map((f) => `- ${f.signature}\n    ${f.repro}`).join("\n")}`,
      );
    }
    expect(report.crashes).toEqual([]);
    expect(findings.map((f) => f.signature)).toEqual([]);
  });
});
