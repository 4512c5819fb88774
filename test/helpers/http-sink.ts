import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";

export interface SunkRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** ms since the sink started */
  at: number;
}

/**
 * A loopback HTTP server standing in for a webhook receiver or a provider's
 * API: records every request and answers with `respond` (default 200 `{}`),
 * which may answer later (a slow endpoint).
 */
type SinkAnswer = { status: number; body?: unknown; headers?: Record<string, string> };

export async function startHttpSink(
  respond: (req: SunkRequest, count: number) => SinkAnswer | Promise<SinkAnswer> = () => ({
    status: 200,
  }),
) {
  const requests: SunkRequest[] = [];
  const started = performance.now();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      const sunk: SunkRequest = {
        method: req.method ?? "",
        path: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
        at: performance.now() - started,
      };
      requests.push(sunk);
      const answer = await respond(sunk, requests.length);
      res.writeHead(answer.status, { "content-type": "application/json", ...answer.headers });
      res.end(JSON.stringify(answer.body ?? {}));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    /** Bodies as JSON, in arrival order. */
    json: <T = Record<string, unknown>>() => requests.map((r) => JSON.parse(r.body) as T),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
