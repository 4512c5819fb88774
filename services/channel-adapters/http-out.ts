import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import http from "node:http";
import https from "node:https";
import type { LookupFunction } from "node:net";
import { isNonPublicAddress, isNonPublicHostname } from "../common/access/address-policy.js";

interface OutboundResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** At most MAX_RESPONSE_BYTES of it. */
  text: string;
}

export interface OutboundHttp {
  request(
    url: string,
    init: { method?: string; headers?: Record<string, string>; body?: string },
  ): Promise<OutboundResponse>;
}

/** Refused before any byte left: a private target, a bad URL. */
export class OutboundRefused extends Error {}

const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_RESPONSE_BYTES = 64 * 1024;

/**
 * HTTP for adapters: http(s) only, redirects never followed (a 3xx is just a
 * status), a whole-request timeout, and — unless private targets are allowed
 * (WEBHOOK_ALLOW_PRIVATE) — the SSRF guard applied to the addresses the name
 * resolves to at send time, which are the ones connected to, so a name that
 * turns private after the config check (DNS rebinding) is refused too.
 */
export function createOutboundHttp(options: { allowPrivate: boolean; timeoutMs?: number }): OutboundHttp {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const lookup: LookupFunction = (hostname, lookupOptions, callback) => {
    dnsLookup(hostname, { ...lookupOptions, all: true }, (error, addresses: LookupAddress[]) => {
      if (error) return callback(error, "", 0);
      const refused = addresses.find((a) => isNonPublicAddress(a.address));
      if (refused) {
        return callback(new OutboundRefused(`${hostname} resolves to non-public ${refused.address}`), "", 0);
      }
      if (lookupOptions.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
      const first = addresses[0];
      if (!first) return callback(new OutboundRefused(`${hostname} has no address`), "", 0);
      callback(null, first.address, first.family);
    });
  };

  return {
    request(target, init) {
      return new Promise((resolve, reject) => {
        let url: URL;
        try {
          url = new URL(target);
        } catch {
          return reject(new OutboundRefused("not a valid URL"));
        }
        if (url.protocol !== "http:" && url.protocol !== "https:") {
          return reject(new OutboundRefused(`${url.protocol} URLs are not allowed`));
        }
        const host = url.hostname.replace(/^\[|\]$/g, "");
        if (!options.allowPrivate && isNonPublicHostname(host)) {
          return reject(new OutboundRefused(`${host} is not a public address`));
        }
        const body = init.body === undefined ? undefined : Buffer.from(init.body);
        const headers: Record<string, string> = { ...init.headers };
        if (body) headers["content-length"] = String(body.length);
        const client = url.protocol === "https:" ? https : http;
        const req = client.request(url, {
          method: init.method ?? "POST",
          headers,
          ...(options.allowPrivate ? {} : { lookup }),
          signal: AbortSignal.timeout(timeoutMs),
        });
        req.on("error", (error) =>
          reject(error.name === "AbortError" ? new Error(`no answer within ${timeoutMs} ms`) : error),
        );
        req.on("response", (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on("data", (chunk: Buffer) => {
            if (size < MAX_RESPONSE_BYTES) chunks.push(chunk);
            size += chunk.length;
          });
          res.on("error", reject);
          res.on("end", () => {
            const text = Buffer.concat(chunks).subarray(0, MAX_RESPONSE_BYTES).toString("utf8");
            resolve({ status: res.statusCode ?? 0, headers: res.headers, text });
          });
        });
        req.end(body);
      });
    },
  };
}
