import { readFile } from "node:fs/promises";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { AuthService } from "../../gen/converger/v1/auth_pb.js";
import { cookieValue } from "../common/access/access.js";
import type { AdminSessionsClient } from "../common/access/admin-sessions-client.js";
import { ADMIN_SESSION_COOKIE, CLIENT_IP_HEADER } from "../common/access/context.js";
import { etagOf, readBody } from "../common/rpc/http-io.js";
import type { RawContext, RawRoute } from "../common/service.js";
import { appPage, PAGES, signInPage } from "./pages.js";
import { consoleHeaders, fromConsolePage, html, redirect } from "./security.js";

const ASSETS = new URL("./assets/", import.meta.url);
const ASSET_TYPES: Record<string, string> = { js: "text/javascript; charset=utf-8", css: "text/css; charset=utf-8" };
const SIGN_IN_BODY_BYTES = 4 * 1024;
const SESSION_SECONDS = 8 * 60 * 60;

export interface ConsoleDeps {
  /** Reaches the auth service, which owns sessions. */
  authTransport: Transport;
  sessions: AdminSessionsClient;
  publicOrigin: string;
  /** The edge's URL as clients reach it (the live feed streams from it). */
  streamUrl: () => string;
  /** Cookies go out Secure when the gateway speaks TLS. */
  secure: boolean;
}

/** The operator console (design.md §10): sign-in and sign-out, the pages, and their static assets. */
export function consoleRoutes(deps: ConsoleDeps): RawRoute[] {
  const auth = createClient(AuthService, deps.authTransport);
  const headers = () => consoleHeaders(new URL(deps.streamUrl()).origin);
  const cookie = (value: string, maxAge: number) =>
    `${ADMIN_SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAge}${deps.secure ? "; Secure" : ""}`;
  const sessionOf = async (ctx: RawContext) => {
    const secret = cookieValue(ctx.req.headers.cookie ?? null, ADMIN_SESSION_COOKIE);
    return secret === undefined ? undefined : deps.sessions.verify(secret);
  };
  const get = (path: string, handle: RawRoute["handle"]): RawRoute => ({
    method: "GET",
    path,
    bodyLimitBytes: 0,
    handle,
  });

  const routes: RawRoute[] = [
    get("/admin", ({ res }) => redirect(res, "/admin/", headers())),
    get("/admin/", async (ctx) => {
      if (await sessionOf(ctx)) return redirect(ctx.res, "/admin/tenants", headers());
      html(ctx.res, 200, signInPage(), headers());
    }),
    {
      method: "POST",
      path: "/admin/sign-in",
      bodyLimitBytes: SIGN_IN_BODY_BYTES,
      async handle(ctx) {
        if (!fromConsolePage(ctx.req, deps.publicOrigin)) {
          return html(ctx.res, 403, signInPage("Sign in from the console's own page."), headers());
        }
        const token = new URLSearchParams((await readBody(ctx.req, SIGN_IN_BODY_BYTES)).toString()).get("token");
        if (!token) return html(ctx.res, 400, signInPage("Enter the admin token."), headers());
        try {
          // The token is checked as the admin credential of any call: address first, failures counted.
          const session = await auth.createAdminSession(
            {},
            { headers: { authorization: `Bearer ${token.trim()}`, [CLIENT_IP_HEADER]: ctx.clientIp } },
          );
          redirect(ctx.res, "/admin/tenants", { ...headers(), "set-cookie": cookie(session.secret, SESSION_SECONDS) });
        } catch (error) {
          const { status, message } = signInRefusal(ConnectError.from(error));
          html(ctx.res, status, signInPage(message), headers());
        }
      },
    },
    {
      method: "POST",
      path: "/admin/sign-out",
      bodyLimitBytes: SIGN_IN_BODY_BYTES,
      async handle(ctx) {
        if (!fromConsolePage(ctx.req, deps.publicOrigin)) {
          return html(ctx.res, 403, signInPage("Sign out from the console's own page."), headers());
        }
        const secret = cookieValue(ctx.req.headers.cookie ?? null, ADMIN_SESSION_COOKIE);
        if (secret) await deps.sessions.end(secret, ctx.clientIp);
        redirect(ctx.res, "/admin/", { ...headers(), "set-cookie": cookie("", 0) });
      },
    },
    ...PAGES.map((page) =>
      get(page.path, async (ctx) => {
        if (!(await sessionOf(ctx))) return redirect(ctx.res, "/admin/", headers());
        html(ctx.res, 200, appPage(page, deps.streamUrl()), headers());
      }),
    ),
    get("/admin/assets/{file}", async ({ res, params }) => {
      const asset = await loadAsset(params.file ?? "");
      if (!asset) return html(res, 404, "not found", headers());
      const etag = asset.etag;
      res
        .writeHead(200, {
          ...headers(),
          "content-type": asset.type,
          "content-length": asset.body.length,
          "cache-control": "no-cache",
          etag,
        })
        .end(asset.body);
    }),
  ];
  return routes;
}

/** A console asset by file name: letters, digits and dashes, .js or .css; nothing else is ever read. */
async function loadAsset(file: string): Promise<{ body: Buffer; type: string; etag: string } | undefined> {
  const match = /^[a-z0-9-]+\.(js|css)$/.exec(file);
  if (!match) return undefined;
  const body = await readFile(new URL(file, ASSETS)).catch(() => undefined);
  if (!body) return undefined;
  return { body, type: ASSET_TYPES[match[1] as string] as string, etag: etagOf(body) };
}

function signInRefusal(error: ConnectError): { status: number; message: string } {
  switch (error.code) {
    case Code.Unauthenticated:
      return { status: 401, message: "That admin token is not valid." };
    case Code.ResourceExhausted:
      return { status: 429, message: "Too many failed sign-ins from this address; wait a minute and try again." };
    case Code.PermissionDenied:
      return { status: 403, message: "The console is not open to this address." };
    default:
      throw error;
  }
}
