import { readFile, stat } from "node:fs/promises";
import { etagOf, writeJson } from "../common/rpc/http-io.js";
import type { RawRoute } from "../common/service.js";

/** Written by `npm run build` (packages/client/build.ts); `npm start` builds it first. */
const BROWSER_BUILD = new URL("../../packages/client/dist/converger.js", import.meta.url);

interface Cached {
  mtimeMs: number;
  size: number;
  body: Buffer;
  etag: string;
}

/**
 * GET /sdk/converger.js: the client SDK as one ES module, for pages that load
 * it with `script-src 'self'`. No credentials: it is public code. Its URL is
 * not versioned, so browsers revalidate every time and get 304 while the
 * build is unchanged; a rebuild is picked up without a restart.
 */
export function sdkScriptRoute(file: URL = BROWSER_BUILD): RawRoute {
  let cached: Cached | undefined;
  async function load(): Promise<Cached | undefined> {
    const info = await stat(file).catch(() => undefined);
    if (!info) return undefined;
    if (cached?.mtimeMs !== info.mtimeMs || cached.size !== info.size) {
      const body = await readFile(file);
      const etag = etagOf(body);
      cached = { mtimeMs: info.mtimeMs, size: info.size, body, etag };
    }
    return cached;
  }
  return {
    method: "GET",
    path: "/sdk/converger.js",
    bodyLimitBytes: 0,
    async handle({ req, res }) {
      const script = await load();
      if (!script) {
        return writeJson(res, 404, {
          code: "not_found",
          message: "the browser SDK is not built: run `npm run build` (npm start does it first)",
          details: [],
        });
      }
      const headers = { etag: script.etag, "cache-control": "no-cache" };
      if (req.headers["if-none-match"] === script.etag) return void res.writeHead(304, headers).end();
      res
        .writeHead(200, {
          ...headers,
          "content-type": "text/javascript; charset=utf-8",
          "content-length": script.body.length,
        })
        .end(script.body);
    },
  };
}
