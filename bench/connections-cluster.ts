// 100,000 sockets on one box: one all-in-one server (database, auth, conversations), `edges` edge-only
// processes sharing Redis, and one client process per edge with its own 127.0.0.x source address. Reports
// sockets held and each edge's RSS growth per connection (settled readings, see settledRssKb). Every
// socket has a token of its own by default (--tokens N shares N among them). Needs redis-server.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Client, createTenant, fmt, inPool, options } from "./lib.js";
import { startServer } from "./server.js";
import { mintToken, settledRssKb } from "./ws-lib.js";

const opts = options("connections-cluster", { connections: 100_000, edges: 6, tokens: 0, seconds: 240 });
const tokenCount = opts.tokens > 0 ? Math.floor(opts.tokens) : opts.connections;
const ROOT = fileURLToPath(new URL("../", import.meta.url));
const perEdge = Math.ceil(opts.connections / opts.edges);
const children: ChildProcess[] = [];
const kill = () => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGTERM");
};
process.on("exit", kill);

/** Spawns a process and resolves with it once a stdout line matches `ready`. */
function launch(args: string[], env: Record<string, string>, ready: RegExp, timeoutMs = 60_000) {
  const child = spawn(process.execPath, ["--import", "tsx", ...args], { cwd: ROOT, env: { ...process.env, ...env } });
  children.push(child);
  return new Promise<{ child: ChildProcess; match: RegExpExecArray; lines: string[] }>((resolve, reject) => {
    const lines: string[] = [];
    const timer = setTimeout(
      () => reject(new Error(`${args.join(" ")}: not ready; last ${lines.slice(-3)}`)),
      timeoutMs,
    );
    child.stdout?.on("data", (d: Buffer) => {
      for (const line of d.toString().split("\n").filter(Boolean)) {
        lines.push(line);
        const match = ready.exec(line);
        if (match) {
          clearTimeout(timer);
          resolve({ child, match, lines });
        }
      }
    });
    child.stderr?.on("data", (d: Buffer) => process.stderr.write(`[${args[0]}] ${d}`));
    child.once("exit", (code) => reject(new Error(`${args.join(" ")} exited ${code}; last ${lines.slice(-3)}`)));
  });
}

const redisPort = 20_000 + Math.floor(Math.random() * 10_000);
const redis = spawn("redis-server", [
  "--port",
  String(redisPort),
  "--bind",
  "127.0.0.1",
  "--save",
  "",
  "--appendonly",
  "no",
]);
children.push(redis);
await new Promise((r) => setTimeout(r, 500));
const shared = {
  REDIS_URL: `redis://127.0.0.1:${redisPort}`,
  PUBLIC_URL: "http://bench.invalid",
  WS_MAX_CONNECTIONS_PER_USER: "100000",
  WS_MAX_CONNECTIONS_PER_TENANT: "200000",
  LOG_LEVEL: "warn",
};
Object.assign(process.env, shared);
const server = await startServer("services/host/main.ts");
try {
  const client = new Client(server.url, 32);
  const { secret } = await createTenant(client, server);
  const tokens: string[] = [];
  const minting = performance.now();
  await inPool(tokenCount, 32, async (i) => void tokens.push((await mintToken(client, secret, `user-${i}`)).token));
  console.log(`minted ${tokens.length} tokens in ${fmt((performance.now() - minting) / 1000, 0, 1)} s`);
  // Too many for a command line: each client reads its share from a file.
  const tokenDir = mkdtempSync(join(tmpdir(), "converger-tokens-"));
  process.on("exit", () => rmSync(tokenDir, { recursive: true, force: true }));
  const tokenFile = (edge: number) => {
    const file = join(tokenDir, `edge-${edge}`);
    const ownTokens = tokens.length >= opts.connections;
    const share = ownTokens ? tokens.slice(edge * perEdge, (edge + 1) * perEdge) : tokens;
    writeFileSync(file, share.join("\n"));
    return file;
  };
  const edgeEnv = {
    ...shared,
    ADMIN_TOKEN: server.adminToken,
    CONVERSATIONS_GRPC_URL: server.grpcUrl ?? "",
    AUTH_GRPC_URL: server.grpcUrl ?? "",
    WS_PORT: "0",
    GRPC_PORT: "0",
  };
  const edges = await Promise.all(
    Array.from({ length: opts.edges }, () =>
      launch(["services/host/main.ts", "--services=realtime"], edgeEnv, /^edge (ws:\S+)$/),
    ),
  );
  const before = (await Promise.all(edges.map((e) => settledRssKb(e.child.pid ?? 0)))).map((r) => r.kb);
  const started = performance.now();
  const clients = await Promise.all(
    edges.map((edge, i) =>
      launch(
        ["bench/connections-client.ts", `${edge.match[1]}/ws`, String(perEdge), `127.0.0.${10 + i}`, tokenFile(i)],
        {},
        /^HELD (\d+)$/,
        opts.seconds * 1000,
      ),
    ),
  );
  const seconds = (performance.now() - started) / 1000;
  const held = clients.map((c) => Number(c.match[1]));
  const total = held.reduce((a, b) => a + b, 0);
  console.log(
    `\nsockets held: ${total} of ${opts.connections} over ${opts.edges} edges, opened in ${fmt(seconds, 0, 1)} s`,
  );
  const after = (await Promise.all(edges.map((e) => settledRssKb(e.child.pid ?? 0)))).map((r) => r.kb);
  for (const [i] of edges.entries()) {
    const grown = (after[i] ?? 0) - (before[i] ?? 0);
    const failed = clients[i]?.lines.find((l) => l.startsWith("FAIL"));
    console.log(
      `  edge ${i + 1}: ${held[i]} sockets, RSS +${fmt(grown / 1024, 0, 1)} MB = ${fmt(grown / Math.max(1, held[i] ?? 1), 0, 2)} KB/socket${failed ? `  (${failed})` : ""}`,
    );
  }
  console.log(`goal: 100,000 sockets on this box, edge RSS growth ≤ 2 KB per connection`);
  for (const c of clients) c.child.stdin?.end();
  await new Promise((r) => setTimeout(r, 3000));
} finally {
  kill();
  await server.stop();
}
