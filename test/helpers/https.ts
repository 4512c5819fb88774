import https from "node:https";
import type { ApiResponse, CallOptions } from "./app.js";

/**
 * `call` over HTTPS with a CA of the test's own (fetch cannot be given one
 * without undici's Agent). `agent` lets a test keep one connection open.
 */
// biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON bodies
export function httpsCall<T = Record<string, any>>(
  url: string,
  method: string,
  options: CallOptions & { ca: Buffer; agent?: https.Agent },
): Promise<ApiResponse<T>> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.key) headers["x-api-key"] = options.key;
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  const raw = Buffer.isBuffer(options.body);
  const body = raw || options.body === undefined ? (options.body as Buffer | undefined) : JSON.stringify(options.body);
  if (body !== undefined && !raw) headers["content-type"] ??= "application/json";
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method, headers, ca: options.ca, agent: options.agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("error", reject);
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString();
        let parsed: unknown = text;
        try {
          parsed = text ? JSON.parse(text) : {};
        } catch {
          // not JSON: keep the text
        }
        const responseHeaders = new Headers();
        for (const [name, value] of Object.entries(res.headers)) {
          if (value !== undefined) responseHeaders.set(name, Array.isArray(value) ? value.join(", ") : value);
        }
        resolve({ status: res.statusCode ?? 0, headers: responseHeaders, body: parsed as T });
      });
    });
    req.on("error", reject);
    req.end(body);
  });
}
