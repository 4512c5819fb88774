import { timingSafeEqual } from "node:crypto";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  Code,
  ConnectError,
  createClient,
  type HandlerContext,
  type ServiceImpl,
  type Transport,
} from "@connectrpc/connect";
import type { AuthService } from "../../gen/converger/v1/auth_pb.js";
import { DirectoryService } from "../../gen/converger/v1/conversations_pb.js";
import { type AuthFailure, hashSecret, tenantOf } from "../common/access/access.js";
import { CLIENT_IP_HEADER, kPrincipal } from "../common/access/context.js";
import type { CredentialDirectory } from "../common/access/directory-client.js";
import { internalHeaders } from "../common/access/internal.js";
import type { RateLimits } from "../common/access/rate-limits.js";
import { type Config, streamUrlOf } from "../common/config.js";
import { conflict, notFound } from "../common/rpc/errors.js";
import { pageOf, pageResult } from "../common/rpc/pagination.js";
import { nameOf } from "../common/rpc/validation.js";
import type { AdminMethods } from "./admin.js";
import { invalidClient, invalidGrant, invalidScope, oauthError } from "./oauth-errors.js";
import { checkScopes, narrowScope } from "./scopes.js";
import type { SigningKeys } from "./signing-keys.js";
import { CLIENT_SECRET_LENGTH, type ClientStore, type OAuthClientRow } from "./store/clients.js";
import type { RefreshTokenStore } from "./store/refresh-tokens.js";
import { ACCESS_TOKEN_SECONDS, CLIENT_TOKEN_SECONDS, type TokenIssuer } from "./tokens.js";

export interface AuthDeps {
  clients: ClientStore;
  refreshTokens: RefreshTokenStore;
  keys: SigningKeys;
  tokens: TokenIssuer;
  directory: CredentialDirectory;
  conversationsTransport: Transport;
  config: Config;
  edgePort: () => number;
  audit: (failure: AuthFailure) => void;
  rateLimits: RateLimits;
  recordAudit: (failure: AuthFailure) => Promise<void>;
}

/** The OAuth and token RPCs; service.ts adds the signing keys' rewrap and the console's (admin.ts). */
export function authImpl(deps: AuthDeps): Omit<ServiceImpl<typeof AuthService>, "rewrapSigningKeys" | AdminMethods> {
  const directoryClient = createClient(DirectoryService, deps.conversationsTransport);
  const internal = internalHeaders(deps.config.internalToken);

  function failed(ctx: HandlerContext, kind: string, reason: string, tenantId?: string) {
    const sourceIp = ctx.requestHeader.get(CLIENT_IP_HEADER) ?? "";
    deps.audit({ kind, reason, sourceIp, ...(tenantId === undefined ? {} : { tenantId }) });
  }

  async function clientToken(
    user: { id: string; name: string },
    tenantId: string,
    conversationId: string,
    channelId: string,
  ) {
    const joined = await directoryClient.joinConversation(
      { tenantId, conversationId, channelId, userId: user.id },
      { headers: internal },
    );
    const token = await deps.tokens.client(user, {
      tenantId,
      channelId: joined.channelId,
      conversationId: joined.conversationId,
    });
    return {
      token,
      conversationId: joined.conversationId,
      expiresIn: CLIENT_TOKEN_SECONDS,
      streamUrl: `${streamUrlOf(deps.config, deps.edgePort())}?token=${token}`,
    };
  }

  return {
    async issueToken(req, ctx) {
      if (req.grantType !== "client_credentials") {
        throw oauthError(Code.InvalidArgument, "unsupported_grant_type", "only client_credentials is supported here");
      }
      // Guessing is limited per address and per client from that address (a client-wide lock would let
      // anyone who knows a client_id shut it out), and a refused guess is never checked.
      const address = ctx.requestHeader.get(CLIENT_IP_HEADER) ?? "";
      const failureKeys = [`ip:${address}`, `client:${req.clientId.slice(0, 100)}@${address}`];
      deps.rateLimits.refuseBlocked(...failureKeys);
      const client = await authenticateClient(req.clientId, req.clientSecret);
      if (!client) {
        failed(ctx, "client_credentials", "invalid client credentials");
        await Promise.all(failureKeys.map((key) => deps.rateLimits.recordAuthFailure(key)));
        throw invalidClient();
      }
      const tenant = await deps.directory.tenantStatus(client.tenant_id);
      if (!tenant.active) throw oauthError(Code.PermissionDenied, "unauthorized_client", "tenant is inactive");
      const scope = narrowScope(client.scopes, req.scope);
      if (scope === undefined) throw invalidScope("requested scope exceeds the client's scopes");
      const grant = { clientId: client.client_id, tenantId: client.tenant_id, scope };
      const [accessToken, refreshToken] = await Promise.all([
        deps.tokens.access(grant.clientId, grant.tenantId, scope),
        deps.refreshTokens.issue(grant),
      ]);
      return { accessToken, tokenType: "Bearer", expiresIn: ACCESS_TOKEN_SECONDS, refreshToken, scope };
    },

    async refreshToken(req, ctx) {
      const outcome = await deps.refreshTokens.rotate(req.refreshToken, (granted) =>
        narrowScope(granted.split(" "), req.scope),
      );
      if ("error" in outcome) {
        if (outcome.error === "scope") throw invalidScope("requested scope exceeds the original grant");
        if (outcome.error === "reused") failed(ctx, "refresh_token", "rotated refresh token reused; family revoked");
        throw invalidGrant(`refresh token is ${outcome.error === "unknown" ? "not valid" : outcome.error}`);
      }
      const { grant, token } = outcome.ok;
      const tenant = await deps.directory.tenantStatus(grant.tenantId);
      if (!tenant.active) throw oauthError(Code.PermissionDenied, "unauthorized_client", "tenant is inactive");
      const accessToken = await deps.tokens.access(grant.clientId, grant.tenantId, grant.scope);
      return {
        accessToken,
        tokenType: "Bearer",
        expiresIn: ACCESS_TOKEN_SECONDS,
        refreshToken: token,
        scope: grant.scope,
      };
    },

    async revokeToken(req) {
      await deps.refreshTokens.revoke(req.refreshToken);
      return {};
    },

    async createOAuthClient(req, ctx) {
      const scopes = checkScopes(req.scopes);
      const { row, secret } = await deps.clients.create(tenantOf(ctx.values.get(kPrincipal)), nameOf(req.name), scopes);
      return clientMessage(row, secret);
    },

    async listOAuthClients(req, ctx) {
      const page = pageOf(req);
      const rows = await deps.clients.list(tenantOf(ctx.values.get(kPrincipal)), page);
      const { items, nextCursor } = pageResult(
        rows.map((r) => ({ ...r, id: r.client_id })),
        page,
      );
      return { clients: items.map((r) => clientMessage(r)), nextCursor };
    },

    async disableOAuthClient(req, ctx) {
      const row = await deps.clients.disable(tenantOf(ctx.values.get(kPrincipal)), req.clientId);
      if (!row) throw notFound("OAuth client");
      return clientMessage(row);
    },

    async rotateOAuthClientSecret(req, ctx) {
      const rotated = await deps.clients.rotateSecret(tenantOf(ctx.values.get(kPrincipal)), req.clientId);
      if (!rotated) throw notFound("OAuth client");
      return clientMessage(rotated.row, rotated.secret);
    },

    async createClientToken(req, ctx) {
      const principal = ctx.values.get(kPrincipal);
      if (principal.kind !== "channel") throw new ConnectError("a channel secret is required", Code.PermissionDenied);
      if (!principal.channelActive) throw conflict("channel is inactive");
      const user = req.user ?? { id: "", name: "" };
      return clientToken(user, principal.tenantId, req.conversationId, principal.channelId);
    },

    async refreshClientToken(_req, ctx) {
      const principal = ctx.values.get(kPrincipal);
      if (principal.kind !== "end_user") throw new ConnectError("a client token is required", Code.PermissionDenied);
      const user = { id: principal.userId, name: principal.userName };
      return clientToken(user, principal.tenantId, principal.conversationId, principal.channelId);
    },

    async createConversationToken(req, ctx) {
      const user = req.user ?? { id: "", name: "" };
      return clientToken(user, tenantOf(ctx.values.get(kPrincipal)), req.conversationId, "");
    },

    async getJwks() {
      return { keys: await deps.keys.publicKeys() };
    },

    async rotateSigningKey() {
      return { kid: await deps.keys.rotate() };
    },

    async recordAuthFailure(req) {
      await deps.recordAudit({ tenantId: req.tenantId, kind: req.kind, sourceIp: req.sourceIp, reason: req.reason });
      return {};
    },
  };

  /** The client if id and secret match; constant-time, and a wrong-length secret is just wrong. */
  async function authenticateClient(clientId: string, secret: string): Promise<OAuthClientRow | undefined> {
    if (!clientId || clientId.length > 64 || secret.length !== CLIENT_SECRET_LENGTH) return undefined;
    const client = await deps.clients.get(clientId);
    if (!client || client.disabled) return undefined;
    return timingSafeEqual(hashSecret(secret), client.secret_hash) ? client : undefined;
  }
}

function clientMessage(row: OAuthClientRow, secret?: string) {
  return {
    clientId: row.client_id,
    name: row.name,
    scopes: row.scopes,
    disabled: row.disabled,
    clientSecret: secret,
    createdAt: timestampFromDate(row.created_at),
  };
}
