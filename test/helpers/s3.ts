import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "./process.js";

export interface S3Server {
  endpoint: string;
  env: Record<string, string>;
  stop(): Promise<void>;
}

// A package of its own (test/s3-server), installed by scripts/test-all.sh: its `node` would shadow ours here.
const SERVER_DIR = fileURLToPath(new URL("../s3-server/node_modules/", import.meta.url));

/**
 * A real S3-compatible server on loopback: fauxqs (npm), which implements
 * multipart upload and UploadPartCopy. It needs Node ≥ 22.5, which the npm
 * package `node@22` provides as a binary of its own.
 */
export async function startS3(): Promise<S3Server> {
  const node = join(SERVER_DIR, "node", "bin", "node");
  const cli = join(SERVER_DIR, "fauxqs", "dist", "cli.js");
  if (!existsSync(node) || !existsSync(cli))
    throw new Error("run `npm ci --prefix test/s3-server` (npm run test:all does)");
  const port = await freePort();
  const child: ChildProcess = spawn(node, [cli], {
    env: { ...process.env, FAUXQS_PORT: String(port), FAUXQS_HOST: "127.0.0.1", FAUXQS_LOGGER: "false" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const kill = () => child.kill("SIGKILL");
  process.once("exit", kill);
  const endpoint = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`fauxqs exited ${child.exitCode}: ${stderr}`);
    const ok = await fetch(`${endpoint}/health`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (i > 300) throw new Error(`fauxqs did not answer within 30 s: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    endpoint,
    env: { S3_ENDPOINT: endpoint, S3_ACCESS_KEY: "test", S3_SECRET_KEY: "testtest", S3_BUCKET: "converger-test" },
    async stop() {
      process.removeListener("exit", kill);
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        await new Promise((r) => child.once("exit", r));
      }
    },
  };
}
