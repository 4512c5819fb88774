import type { IncomingMessage, ServerResponse } from "node:http";
import { fromOwnOrigin } from "../common/access/same-origin.js";

/**
 * Headers of every console answer: scripts only from our own origin (no
 * inline script, no eval), never framed, no referrer leaving the console.
 * `connect-src` adds the edge, which listens on its own port.
 */
export function consoleHeaders(edgeOrigin: string): Record<string, string> {
  return {
    "content-security-policy": [
      "default-src 'self'",
      "script-src 'self'",
      "style-src 'self'",
      "img-src 'self' data:",
      `connect-src 'self' ${edgeOrigin}`,
      "frame-ancestors 'none'",
      "base-uri 'none'",
      "form-action 'self'",
      "object-src 'none'",
    ].join("; "),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    // Not no-referrer: under it Chromium sends `Origin: null` with form posts, which the CSRF check refuses.
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
  };
}

/** A form post that changes something (sign-in, sign-out) must come from a console page. */
export function fromConsolePage(req: IncomingMessage, publicOrigin: string): boolean {
  const host = req.headers.host ?? req.headers[":authority"];
  return fromOwnOrigin(req.headers.origin, typeof host === "string" ? host : undefined, publicOrigin);
}

export function redirect(res: ServerResponse, location: string, headers: Record<string, string> = {}): void {
  res.writeHead(303, { ...headers, location, "content-length": "0" }).end();
}

export function html(res: ServerResponse, status: number, body: string, headers: Record<string, string>): void {
  res
    .writeHead(status, {
      ...headers,
      "content-type": "text/html; charset=utf-8",
      "content-length": Buffer.byteLength(body),
    })
    .end(body);
}
