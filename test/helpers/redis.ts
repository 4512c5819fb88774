import { type ChildProcess, spawn } from "node:child_process";

export interface RedisServer {
  url: string;
  stop(): Promise<void>;
  /** Starts it again on the same port (after stop). */
  restart(): Promise<void>;
}

/** A real redis-server (Debian package) on a loopback port, without persistence. */
export async function startRedis(port: number): Promise<RedisServer> {
  let proc: ChildProcess | undefined;
  const launch = () =>
    new Promise<void>((resolve, reject) => {
      const child = spawn(
        "redis-server",
        ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        {
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      proc = child;
      let output = "";
      const timer = setTimeout(() => reject(new Error(`redis-server did not start:\n${output}`)), 10_000);
      child.stdout?.on("data", (d: Buffer) => {
        output += d.toString();
        if (output.includes("Ready to accept connections")) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited with ${code}:\n${output}`));
      });
    });
  const stop = async () => {
    const child = proc;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGKILL");
    await exited;
  };
  await launch();
  return { url: `redis://127.0.0.1:${port}`, stop, restart: launch };
}
