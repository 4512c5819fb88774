import http from "node:http";
import { cpus } from "node:os";
import type { Server } from "./server.js";

const REQUEST_TIMEOUT_MS = 30_000;

/** Numeric options from `--name value`, `--name=value` or env `BENCH_NAME`, over the defaults; prints them. */
export function options<T extends Record<string, number>>(script: string, defaults: T): T {
  const out: Record<string, number> = { ...defaults };
  const argv = process.argv.slice(2);
  for (const name of Object.keys(defaults)) {
    const env = process.env[`BENCH_${name.toUpperCase()}`];
    if (env) out[name] = Number(env);
  }
  for (let i = 0; i < argv.length; i++) {
    const [flag = "", inline] = argv[i]!.split("=", 2);
    const name = flag.slice(2);
    if (!flag.startsWith("--") || !(name in defaults)) throw new Error(`unknown option ${argv[i]}`);
    out[name] = Number(inline ?? argv[++i]);
  }
  for (const [name, value] of Object.entries(out)) {
    if (!Number.isFinite(value) || value < 0) throw new Error(`--${name} must be a number ≥ 0`);
  }
  console.log(`$ tsx bench/${script}.ts ${argv.join(" ")}`.trimEnd());
  const settings = Object.entries(out).map(([k, v]) => `${k}=${v}`);
  console.log(`settings: ${settings.join(" ")} (node ${process.version}, ${cpus().length} CPUs)`);
  return out as T;
}

/** A keep-alive HTTP/1.1 client (node:http Agent) for one loopback origin. */
export class Client {
  readonly agent: http.Agent;
  readonly url: URL;
  constructor(baseUrl: string, maxSockets: number) {
    this.url = new URL(baseUrl);
    this.agent = new http.Agent({ keepAlive: true, maxSockets });
  }
  send(method: string, path: string, headers: http.OutgoingHttpHeaders, body?: string) {
    return new Promise<{ status: number; body: string }>((resolve, reject) => {
      const { hostname: host, port } = this.url;
      const req = http.request({ agent: this.agent, host, port, method, path, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      });
      req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error(`${method} ${path} timed out`)));
      req.on("error", reject);
      req.end(body);
    });
  }
  /** One JSON call that must answer `expect`; throws with the answer otherwise. */
  async json<T>(method: string, path: string, expect: number, headers: http.OutgoingHttpHeaders, body?: unknown) {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const all = payload ? { ...headers, "content-type": "application/json" } : headers;
    const reply = await this.send(method, path, all, payload);
    if (reply.status !== expect) throw new Error(`${method} ${path}: ${reply.status} ${reply.body.slice(0, 300)}`);
    return JSON.parse(reply.body) as T;
  }
}

/** Creates a tenant and a websocket channel; returns the tenant's API-key header, the channel id and its secret. */
export async function createTenant(client: Client, server: Server) {
  const admin = { authorization: `Bearer ${server.adminToken}` };
  const tenant = await client.json<{ api_key: string }>("POST", "/admin/v1/tenants", 201, admin, { name: "bench" });
  const headers = { "x-api-key": tenant.api_key };
  const body = { name: "c", type: "websocket", config: {} };
  const channel = await client.json<{ id: string; secret: string }>("POST", "/v1/channels", 201, headers, body);
  return { headers, channelId: channel.id, secret: channel.secret };
}

/** Runs task(0..count-1) with at most `concurrency` in flight. */
export async function inPool(count: number, concurrency: number, task: (i: number) => Promise<void>) {
  let next = 0;
  const worker = async () => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, count)) }, worker));
}

/** Nearest-rank percentiles (ms) of the samples. */
export function percentiles(samples: number[]) {
  const sorted = Float64Array.from(samples).sort();
  const at = (p: number) => sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
  return { n: sorted.length, p50: at(50), p95: at(95), p99: at(99), max: at(100) };
}

export const fmt = (value: number, width = 9, digits = 2) => value.toFixed(digits).padStart(width);
