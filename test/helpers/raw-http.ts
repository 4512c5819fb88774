import { connect } from "node:net";

/** One HTTP/1.1 request as the fuzz sends it: bytes on the wire, nothing normalized. */
export interface RawRequest {
  method: string;
  /** The request target exactly as sent (`//`, `*`, `http://x/`, `%zz`…). */
  target: string;
  headers: [string, string][];
  body?: Uint8Array | string | undefined;
  /** Adds `Content-Length` from the body unless a header already sets length or chunking. */
  autoLength?: boolean;
}

export interface RawResponse {
  /** Status of the first response line, or undefined when none came. */
  status?: number | undefined;
  /** The start of the answer (status line, headers, a little body) for reports. */
  head: string;
  timedOut: boolean;
  ms: number;
}

const HEAD_BYTES = 2000;

/** The request's bytes: request line, headers, blank line, body. */
function encodeRequest(request: RawRequest): Buffer {
  const body = request.body === undefined ? Buffer.alloc(0) : Buffer.from(request.body);
  const headers = [...request.headers];
  const framed = headers.some(([name]) => /^(content-length|transfer-encoding)$/i.test(name));
  if (request.autoLength !== false && !framed && (body.length > 0 || request.method !== "GET")) {
    headers.push(["Content-Length", String(body.length)]);
  }
  const lines = [`${request.method} ${request.target} HTTP/1.1`, ...headers.map(([n, v]) => `${n}: ${v}`)];
  return Buffer.concat([Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1"), body]);
}

/**
 * Sends raw bytes on a fresh connection and waits for the server to finish its
 * answer (the request says `Connection: close`) or for `timeoutMs`.
 */
export interface SendOptions {
  timeoutMs?: number;
  /** Done once the status line and headers arrived (upgrades keep the connection open). */
  untilHead?: boolean;
  /** Half-closes after writing, for requests whose body is deliberately shorter than declared. */
  halfClose?: boolean;
}

function sendRaw(port: number, bytes: Buffer, options: SendOptions = {}): Promise<RawResponse> {
  const { timeoutMs = 5000 } = options;
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = connect(port, "127.0.0.1");
    let received = Buffer.alloc(0);
    let done = false;
    const finish = (timedOut: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      // Interim answers (100 Continue) come before the real one.
      const head = received
        .subarray(0, HEAD_BYTES)
        .toString("latin1")
        .replace(/^(HTTP\/1\.[01] 1(?!01)\d\d[^\r]*\r\n(?:[^\r]+\r\n)*\r\n)+/, "");
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1];
      resolve({ status: status ? Number(status) : undefined, head, timedOut, ms: performance.now() - started });
    };
    const timer = setTimeout(() => finish(true), timeoutMs);
    socket.on("data", (chunk) => {
      if (received.length < HEAD_BYTES) received = Buffer.concat([received, chunk]);
      if (options.untilHead && received.includes("\r\n\r\n")) finish(false);
    });
    socket.on("end", () => finish(false));
    socket.on("close", () => finish(false));
    socket.on("error", () => finish(false));
    // The server may answer (413, 400) and close before reading everything: that is fine.
    if (options.halfClose) socket.end(bytes);
    else socket.write(bytes, () => undefined);
  });
}

/** `sendRaw` of an encoded request with `Host` and `Connection: close` added when absent. */
export function send(port: number, request: RawRequest, options: SendOptions = {}): Promise<RawResponse> {
  const has = (name: string) => request.headers.some(([n]) => n.toLowerCase() === name);
  const headers: [string, string][] = [...request.headers];
  if (!has("host")) headers.unshift(["Host", `127.0.0.1:${port}`]);
  if (!has("connection")) headers.push(["Connection", "close"]);
  return sendRaw(port, encodeRequest({ ...request, headers }), options);
}

/** The request as a reproduction: what to paste into `printf '…' | nc`. */
export function describeRequest(request: RawRequest): string {
  const body = request.body === undefined ? Buffer.alloc(0) : Buffer.from(request.body);
  const shownBody =
    body.length > 300
      ? `${JSON.stringify(body.subarray(0, 300).toString("latin1"))}… (${body.length} bytes)`
      : JSON.stringify(body.toString("latin1"));
  const target =
    request.target.length > 300 ? `${request.target.slice(0, 300)}… (${request.target.length} chars)` : request.target;
  const headers = request.headers.map(([n, v]) => `${n}: ${v.length > 200 ? `${v.slice(0, 200)}…(${v.length})` : v}`);
  return `${request.method} ${JSON.stringify(target)} headers=${JSON.stringify(headers)} body=${shownBody}`;
}
