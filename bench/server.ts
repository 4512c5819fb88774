// Runs a server script (services/host/main.ts or bench/bare-server.ts) in a child
// process, so it never shares the load generator's event loop: loopback only,
// free ports, fresh DATA_DIR, LOG_LEVEL=warn; stop() sends SIGTERM and waits.
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const START_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 30_000;

/** url: the gateway; edgeUrl: the WebSocket edge (when the script prints `edge ws://…`); pid: the child. */
export type Server = {
  url: string;
  edgeUrl?: string | undefined;
  /** Internal gRPC listener (`grpc 127.0.0.1:<port>`), as an http:// base URL. */
  grpcUrl?: string | undefined;
  pid: number;
  adminToken: string;
  stop(): Promise<void>;
};

/**
 * The benchmarks measure throughput, not the limits: the limiter still runs
 * (and is measured) with quotas no load reaches. Set RATE_LIMIT_* to measure
 * the defaults.
 */
const LIMITS_OUT_OF_THE_WAY = {
  RATE_LIMIT_PER_MINUTE: "1000000000",
  RATE_LIMIT_TENANT_PER_MINUTE: "1000000000",
  RATE_LIMIT_IP_PER_MINUTE: "1000000000",
  RATE_LIMIT_AUTH_FAILURES_PER_MINUTE: "1000000000",
};

const live = new Map<ChildProcess, () => Promise<void>>();
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => void Promise.all([...live.values()].map((stop) => stop())).then(() => process.exit(130)));
}

/** Runs `script` with tsx in a child process (own event loop); resolves on its `gateway http://…` line. */
export async function startServer(script: string): Promise<Server> {
  const dataDir = mkdtempSync(join(tmpdir(), "converger-bench-"));
  const adminToken = `adm_${randomBytes(24).toString("base64url")}`;
  const env = { HOST: "127.0.0.1", PORT: "0", GRPC_PORT: "0", WS_PORT: "0", LOG_LEVEL: "warn", DATABASE_URL: "" };
  const child = spawn(process.execPath, ["--import", "tsx", script], {
    cwd: ROOT,
    env: { ...LIMITS_OUT_OF_THE_WAY, ...process.env, ...env, DATA_DIR: dataDir, ADMIN_TOKEN: adminToken },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const tail: string[] = [];
  let logged = -1; // lines the server printed after its ready line (LOG_LEVEL=warn)
  const stop = async () => {
    const count = logged; // shutdown noise is not counted
    const last = count > 0 ? tail.slice(-Math.min(3, count)).map((line) => line.slice(0, 300)) : [];
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    }
    live.delete(child);
    await stopPostgres(join(dataDir, "pg", "postmaster.pid"));
    rmSync(dataDir, { recursive: true, force: true });
    if (count > 0) console.error(`${script} logged ${count} lines before it was stopped; last:\n${last.join("\n")}`);
  };
  live.set(child, stop);
  let timer: NodeJS.Timeout | undefined;
  let edgeUrl: string | undefined;
  let grpcUrl: string | undefined;
  const ready = new Promise<string>((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${script} not ready in ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
    let partial = "";
    const onData = (chunk: Buffer) => {
      const lines = (partial + chunk.toString("utf8")).split("\n");
      partial = lines.pop() ?? "";
      let gateway: string | undefined;
      for (const line of lines) {
        if (tail.push(line) > 40) tail.shift();
        const match = /^gateway (http:\/\/127\.0\.0\.1:\d+)$/.exec(line.trim());
        const edge = /^edge (ws:\/\/127\.0\.0\.1:\d+)$/.exec(line.trim());
        if (edge?.[1]) edgeUrl ??= edge[1];
        const grpc = /^grpc (127\.0\.0\.1:\d+)$/.exec(line.trim());
        if (grpc?.[1]) grpcUrl ??= `http://${grpc[1]}`;
        if (logged >= 0) logged += /^(grpc|edge|admin token) /.test(line) ? 0 : 1;
        else if (match?.[1]) {
          logged = 0;
          gateway = match[1];
        }
      }
      // The listener lines come in one write: resolve after the whole chunk, so the edge line is seen too.
      if (gateway) resolve(gateway);
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    void exited.then(() => reject(new Error(`${script} exited before it was ready (code ${child.exitCode})`)));
  });
  try {
    return { url: await ready, edgeUrl, grpcUrl, pid: child.pid ?? 0, adminToken, stop };
  } catch (error) {
    console.error(tail.join("\n"));
    await stop();
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** The postgres of our own data dir, if the server exited without stopping it (postgres removes the file). */
async function stopPostgres(pidFile: string): Promise<void> {
  const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8").split("\n")[0]) : 0;
  for (let i = 0; Number.isInteger(pid) && pid > 0 && i < 100; i++) {
    try {
      process.kill(pid, i === 0 ? "SIGINT" : 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
