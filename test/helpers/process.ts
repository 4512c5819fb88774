import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { UNLIMITED } from "./app.js";

export interface ServiceProcess {
  proc: ChildProcess;
  output: () => string;
  /** SIGTERM and wait for exit; resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `services/host/main.ts` as its own OS process and waits until it printed `readyLine`. */
export async function spawnService(env: Record<string, string>, args: string[] = [], readyLine = /^grpc /m) {
  // node --import tsx (not the tsx CLI) so that signals reach the service itself.
  const proc = spawn(process.execPath, ["--import", "tsx", "services/host/main.ts", ...args], {
    env: { ...process.env, LOG_LEVEL: "warn", ...UNLIMITED, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  proc.stdout?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  proc.stderr?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready within 60 s:\n${output}`)), 60_000);
    const check = () => {
      if (readyLine.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    };
    proc.stdout?.on("data", check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before ready:\n${output}`));
    });
  });
  const service: ServiceProcess = {
    proc,
    output: () => output,
    async stop(signal = "SIGTERM") {
      if (proc.exitCode === null) proc.kill(signal);
      return exited;
    },
  };
  return service;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}
