// The ceiling for bench/ingest.ts: a bare node:http server that reads the body,
// JSON.parses it and answers 201 with a small JSON body. Prints the same
// `gateway http://…` line as services/host/main.ts; stops on SIGTERM/SIGINT.
import http from "node:http";
import type { AddressInfo } from "node:net";

let seq = 0;
const server = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (chunk: Buffer) => chunks.push(chunk));
  req.on("end", () => {
    let status = 201;
    try {
      JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      status = 400;
    }
    const body = JSON.stringify({ id: "bare", seq: String(++seq) });
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
    res.end(body);
  });
});

server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  process.stdout.write(`gateway http://127.0.0.1:${(server.address() as AddressInfo).port}\n`);
});

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
