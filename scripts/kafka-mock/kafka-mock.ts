import { execFile, spawn } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { mkdir, readFile, rename, rm, stat } from "node:fs/promises";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const SOURCE = fileURLToPath(new URL("./kafka-mock.c", import.meta.url));
const CACHE_DIR = fileURLToPath(new URL("../../node_modules/.cache/converger/", import.meta.url));
// Every command is a few in-memory operations; a mock this slow to answer is wedged.
const REPLY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;

export interface KafkaMock {
  /** host:port of each broker; broker id n is at index n - 1. */
  brokers: string[];
  /** Drops the broker's connections and refuses new ones (port kept); no leader change. */
  setDown(brokerId: number): Promise<void>;
  setUp(brokerId: number): Promise<void>;
  /** Auto-created topics get 4 partitions; this creates one with another count. */
  createTopic(name: string, partitions: number): Promise<void>;
  /** Answers the next `count` requests of the API `apiKey` (any broker) with Kafka error `errorCode`. */
  failRequests(apiKey: number, errorCode: number, count?: number): Promise<void>;
  stop(): Promise<void>;
}

/** Builds the mock unless a binary of this very source is cached. */
async function compiledMock(): Promise<string> {
  // Named by the source's hash, not compared by mtime: worktrees of other branches share node_modules,
  // and a binary built from their kafka-mock.c must not pass for one built from ours.
  const hash = createHash("sha256")
    .update(await readFile(SOURCE))
    .digest("hex");
  const binary = `${CACHE_DIR}kafka-mock-${hash.slice(0, 16)}`;
  if (await stat(binary).catch(() => undefined)) return binary;
  await mkdir(CACHE_DIR, { recursive: true });
  // Parallel vitest workers may build at once: each writes its own file and rename() swaps it in atomically.
  const temp = `${binary}.${randomUUID()}.tmp`;
  try {
    await promisify(execFile)("gcc", ["-O1", "-o", temp, SOURCE, "-lrdkafka"]);
  } catch (error) {
    await rm(temp, { force: true });
    const detail = (error as { stderr?: string }).stderr?.trim() || (error as Error).message;
    throw new Error(`cannot build the Kafka mock, run apt-get install -y librdkafka-dev gcc\n${detail}`);
  }
  await rename(temp, binary);
  return binary;
}

/** librdkafka's mock Kafka cluster (loopback only) in a child process, see kafka-mock.c. */
export async function startKafkaMock(options: { brokers?: number } = {}): Promise<KafkaMock> {
  const child = spawn(await compiledMock(), [String(options.brokers ?? 1)], { stdio: ["pipe", "pipe", "pipe"] });
  // SIGKILL of the test process skips this, but then stdin closes and the mock exits on EOF.
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);

  let stderr = "";
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const waiting: { resolve(line: string): void; reject(error: Error): void }[] = [];
  let failure: Error | undefined;
  const exited = new Promise<void>((resolve) => {
    const fail = (reason: string) => {
      failure ??= new Error(`kafka-mock ${reason}\n${stderr}`);
      for (const w of waiting.splice(0)) w.reject(failure);
      process.off("exit", killOnExit);
      resolve();
    };
    child.once("error", (error) => fail(`failed: ${error.message}`));
    // "close", not "exit": by then stderr is drained, e.g. a loader error about a missing librdkafka.so.
    child.once("close", (code, signal) => fail(`exited with ${signal ?? code}`));
  });
  // Writing to a dead mock fails with EPIPE; the exit handler above already reports that.
  child.stdin.on("error", () => {});
  createInterface({ input: child.stdout }).on("line", (line) => waiting.shift()?.resolve(line));

  const nextLine = () =>
    new Promise<string>((resolve, reject) => {
      if (failure) return reject(failure);
      const timer = setTimeout(() => {
        reject(new Error(`kafka-mock did not answer within ${REPLY_TIMEOUT_MS} ms`));
        // Later replies would be matched to the wrong commands: end it so they fail at once instead.
        child.kill("SIGKILL");
      }, REPLY_TIMEOUT_MS);
      waiting.push({
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
    });

  const command = async (line: string) => {
    const reply = nextLine();
    child.stdin.write(`${line}\n`);
    const answer = await reply;
    if (answer !== "OK") throw new Error(`kafka-mock "${line}": ${answer}`);
  };

  const bootstrap = await nextLine();
  if (!bootstrap.startsWith("BOOTSTRAP ")) {
    child.kill("SIGKILL");
    throw new Error(`kafka-mock: unexpected first line "${bootstrap}"`);
  }
  return {
    brokers: bootstrap.slice("BOOTSTRAP ".length).split(","),
    setDown: (brokerId) => command(`down ${brokerId}`),
    setUp: (brokerId) => command(`up ${brokerId}`),
    async createTopic(name, partitions) {
      // The mock reads one command per line and splits on blanks.
      if (/\s/.test(name)) throw new Error(`topic name with whitespace: "${name}"`);
      await command(`topic ${name} ${partitions}`);
    },
    failRequests: (apiKey, errorCode, count = 1) => command(`fail ${apiKey} ${errorCode} ${count}`),
    async stop() {
      // EOF makes the mock destroy its cluster and exit.
      child.stdin.end();
      const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    },
  };
}
