import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { AuthService } from "../../gen/converger/v1/auth_pb.js";
import { CLIENT_IP_HEADER } from "../common/access/context.js";
import { readBody, writeJson, writeOAuthError } from "../common/rpc/http-io.js";
import type { RawRoute } from "../common/service.js";
import { invalidClient, oauthError } from "./oauth-errors.js";

// Token requests are a few fields; anything bigger is not one.
const TOKEN_BODY_LIMIT = 16 * 1024;

/**
 * The auth service's raw HTTP routes: the form-encoded token endpoint (RFC
 * 6749 §4.4, client credentials in the body or HTTP Basic) and the JWKS.
 * They run in the gateway and call the service through its transport.
 */
export function authRawRoutes(transport: Transport): RawRoute[] {
  const auth = createClient(AuthService, transport);
  return [
    {
      method: "POST",
      path: "/auth/token",
      bodyLimitBytes: TOKEN_BODY_LIMIT,
      async handle({ req, res, requestId, clientIp }) {
        const noStore = { "cache-control": "no-store", pragma: "no-cache" };
        try {
          const params = await tokenParams(req.headers["content-type"], await readBody(req, TOKEN_BODY_LIMIT));
          const basic = basicCredentials(req.headers.authorization);
          if (basic && (params.client_id || params.client_secret)) {
            throw oauthError(Code.InvalidArgument, "invalid_request", "use one client authentication method, not two");
          }
          const response = await auth.issueToken(
            {
              grantType: params.grant_type ?? "",
              clientId: basic?.id ?? params.client_id ?? "",
              clientSecret: basic?.secret ?? params.client_secret ?? "",
              scope: params.scope ?? "",
            },
            { headers: { "x-request-id": requestId, [CLIENT_IP_HEADER]: clientIp } },
          );
          writeJson(
            res,
            200,
            {
              access_token: response.accessToken,
              token_type: response.tokenType,
              expires_in: response.expiresIn,
              refresh_token: response.refreshToken,
              scope: response.scope,
            },
            noStore,
          );
        } catch (error) {
          writeOAuthError(res, ConnectError.from(error), noStore);
        }
      },
    },
    {
      method: "GET",
      path: "/.well-known/jwks.json",
      bodyLimitBytes: 0,
      async handle({ res, requestId }) {
        const { keys } = await auth.getJwks({}, { headers: { "x-request-id": requestId } });
        writeJson(res, 200, { keys }, { "cache-control": "public, max-age=300" });
      },
    },
  ];
}

async function tokenParams(contentType: string | undefined, body: Buffer): Promise<Record<string, string | undefined>> {
  const type = (contentType ?? "").split(";")[0]?.trim().toLowerCase();
  if (body.length === 0) return {};
  if (type === "application/x-www-form-urlencoded") {
    const form = new URLSearchParams(body.toString("utf8"));
    for (const name of new Set(form.keys())) {
      // RFC 6749 §3.2: parameters must not be repeated.
      if (form.getAll(name).length > 1)
        throw oauthError(Code.InvalidArgument, "invalid_request", `"${name}" is repeated`);
    }
    return Object.fromEntries(form);
  }
  if (type === "application/json") {
    try {
      const json = JSON.parse(body.toString("utf8")) as unknown;
      if (json && typeof json === "object" && !Array.isArray(json)) {
        return Object.fromEntries(Object.entries(json).map(([k, v]) => [k, typeof v === "string" ? v : undefined]));
      }
    } catch {
      // answered below
    }
    throw oauthError(Code.InvalidArgument, "invalid_request", "body is not a JSON object");
  }
  throw oauthError(Code.InvalidArgument, "invalid_request", "send application/x-www-form-urlencoded or JSON");
}

/** RFC 6749 §2.3.1: Basic with form-encoded id and secret. Malformed → invalid_client. */
function basicCredentials(header: string | undefined): { id: string; secret: string } | undefined {
  if (!header || !/^basic\s/i.test(header)) return undefined;
  const encoded = header.slice(6).trim();
  const decoded = /^[A-Za-z0-9+/]+=*$/.test(encoded) ? Buffer.from(encoded, "base64").toString("utf8") : "";
  const colon = decoded.indexOf(":");
  if (colon <= 0) throw invalidClient();
  try {
    return {
      id: decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, " ")),
      secret: decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, " ")),
    };
  } catch {
    throw invalidClient();
  }
}
