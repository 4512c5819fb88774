import { createHash, timingSafeEqual } from "node:crypto";
import { type DescMethod, getOption, hasOption } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { type AccessRule, access, PrincipalKind } from "../../../gen/converger/v1/options_pb.js";
import { http } from "../../../gen/google/api/annotations_pb.js";
import { rpcMetricsInterceptor } from "../obs/rpc-metrics.js";
import { codeName } from "../rpc/errors.js";
import { validateMessage } from "../rpc/validation.js";
import type { AdminSessionsClient } from "./admin-sessions-client.js";
import { createAddressMatcher } from "./cidr.js";
import {
  ADMIN_SESSION_COOKIE,
  CLIENT_IP_HEADER,
  kAuthenticated,
  kPrincipal,
  OPERATOR_SUBJECT,
  type Principal,
} from "./context.js";
import type { CredentialDirectory } from "./directory-client.js";
import { INTERNAL_HEADER } from "./internal.js";
import type { RateLimits } from "./rate-limits.js";
import { fromOwnOrigin } from "./same-origin.js";
import { InvalidTokenError, principalOfClaims, type TokenVerifier } from "./token-verifier.js";

export interface AuthFailure {
  tenantId?: string;
  kind: string;
  sourceIp: string;
  reason: string;
}

/** An operator's state-changing call (the console's or the admin token's), for the audit log. */
export interface OperatorAction {
  sessionId?: string;
  action: string;
  target?: string;
  tenantId?: string;
  sourceIp: string;
  outcome: string;
}

export interface AccessOptions {
  adminToken: string;
  adminAllowedIps: string[];
  internalToken: string;
  directory: CredentialDirectory;
  verifier: TokenVerifier;
  /** Records a failed authentication (audit log); must not throw. */
  audit: (failure: AuthFailure) => void;
  /** Resolves a console session cookie's secret to its session id; undefined when not live. */
  adminSessions: AdminSessionsClient;
  /** The origin of PUBLIC_URL: console pages served from it may use their session. */
  publicOrigin: string;
  /** Records what an operator did (audit log); must not throw. */
  auditAction: (action: OperatorAction) => void;
  rateLimits: RateLimits;
}

export const API_KEY_PREFIX = "cvg_";
const CHANNEL_SECRET_PREFIX = "cvs_";
// prefix + base64url(32 bytes).
const SECRET_LENGTH = 4 + 43;
const JWT_SHAPE = /^[\w-]+\.[\w-]+\.[\w-]+$/;

export function hashSecret(secret: string): Buffer {
  return createHash("sha256").update(secret).digest();
}

/** Compares secrets in constant time whatever their lengths. */
function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(hashSecret(a), hashSecret(b));
}

class AuthError extends ConnectError {
  constructor(
    message: string,
    code: Code,
    readonly kind: string,
    readonly tenantId?: string,
  ) {
    super(message, code);
  }
}

/**
 * Authenticates the caller of an RPC against its `(converger.v1.access)` rule,
 * before anything of the request body is read (the gateway calls it first,
 * and the access interceptor again). Failed authentications go to the audit
 * log, without the presented secret, and count against the caller's address:
 * past RATE_LIMIT_AUTH_FAILURES_PER_MINUTE that address gets 429 on every
 * authenticated RPC until its window ends.
 */
export function createAuthenticator(options: AccessOptions) {
  const isAdminAddress = createAddressMatcher(options.adminAllowedIps);
  return async function authenticateCall(method: DescMethod, header: Headers): Promise<Principal> {
    const { rule, allow } = accessRuleOf(method);
    if (allow.size === 0) throw new ConnectError("this method is not callable", Code.PermissionDenied);
    const address = header.get(CLIENT_IP_HEADER) ?? "";
    let principal: Principal;
    try {
      principal = await authenticate(method, header, allow, address);
    } catch (error) {
      if (error instanceof AuthError) {
        const { tenantId, kind, rawMessage: reason } = error;
        options.audit({ kind, sourceIp: address, reason, ...(tenantId === undefined ? {} : { tenantId }) });
        // Calls between our own services carry no client address; only clients' failures count.
        if (error.code === Code.Unauthenticated && address) {
          await options.rateLimits.recordAuthFailure(failureKey(address));
        }
      }
      throw error;
    }
    if (principal.kind === "oauth_client" && rule?.scope && !principal.scopes.includes(rule.scope)) {
      throw new ConnectError(`the "${rule.scope}" scope is required`, Code.PermissionDenied);
    }
    return principal;
  };

  async function authenticate(
    method: DescMethod,
    header: Headers,
    allow: Set<PrincipalKind>,
    address: string,
  ): Promise<Principal> {
    if (allow.has(PrincipalKind.OPERATOR)) return authenticateOperator(method, header, address);
    // Open endpoints (/auth/refresh, /auth/revoke) ignore whatever credential a client sends along.
    if (allow.size === 1 && allow.has(PrincipalKind.PUBLIC)) return { kind: "public" };
    // The internal token only ever arrives on the gRPC port (the gateway strips it), and a client locked
    // out there must not lock out our own services calling from the same address.
    const internal = header.get(INTERNAL_HEADER);
    if (internal !== null) {
      if (!allow.has(PrincipalKind.INTERNAL)) throw notAllowed("internal");
      if (!sameSecret(internal, options.internalToken))
        throw new AuthError("invalid internal token", Code.Unauthenticated, "internal");
      return { kind: "internal" };
    }
    refuseBlocked(address);
    const apiKey = header.get("x-api-key");
    if (apiKey !== null) {
      if (!allow.has(PrincipalKind.API_KEY)) throw notAllowed("api_key");
      return authenticateApiKey(apiKey);
    }
    const bearer = bearerToken(header);
    if (bearer?.startsWith(CHANNEL_SECRET_PREFIX)) {
      if (!allow.has(PrincipalKind.CHANNEL)) throw notAllowed("channel_secret");
      return authenticateChannel(bearer);
    }
    if (bearer !== undefined) return authenticateToken(bearer, allow);
    if (allow.has(PrincipalKind.PUBLIC)) return { kind: "public" };
    if (header.get("authorization") !== null)
      throw new AuthError("malformed Authorization header", Code.Unauthenticated, "header");
    throw new AuthError("missing credentials: send X-API-Key or Authorization: Bearer", Code.Unauthenticated, "none");
  }

  function refuseBlocked(address: string): void {
    if (!address) return;
    options.rateLimits.refuseBlocked(failureKey(address));
  }

  async function authenticateOperator(method: DescMethod, header: Headers, address: string): Promise<Principal> {
    // The address check comes first: outside the allowlist even the right token gets 403.
    if (!isAdminAddress(address))
      throw new AuthError("admin access is not allowed from this address", Code.PermissionDenied, "admin");
    refuseBlocked(address);
    const token = bearerToken(header);
    const session = token === undefined ? cookieValue(header.get("cookie"), ADMIN_SESSION_COOKIE) : undefined;
    if (session !== undefined) return authenticateSession(method, header, session);
    if (!token) throw new AuthError("missing admin token", Code.Unauthenticated, "admin");
    if (!sameSecret(token, options.adminToken))
      throw new AuthError("invalid admin token", Code.Unauthenticated, "admin");
    return { kind: "operator" };
  }

  /** A console page's call: the browser sends the cookie by itself, so a change must come from our own pages. */
  async function authenticateSession(method: DescMethod, header: Headers, secret: string): Promise<Principal> {
    const sessionId = await options.adminSessions.verify(secret);
    // Not a failed authentication (no audit, no count against the address): a page left open past its
    // session's end keeps asking, and guessing a 256-bit secret is not a threat worth a lockout.
    if (!sessionId) throw new ConnectError("the console session has ended; sign in again", Code.Unauthenticated);
    if (isStateChanging(method) && !fromOwnOrigin(header.get("origin"), header.get("host"), options.publicOrigin)) {
      throw new ConnectError("a console session cannot be used from another origin", Code.PermissionDenied);
    }
    return { kind: "operator", sessionId };
  }

  async function authenticateApiKey(key: string): Promise<Principal> {
    if (key.length !== SECRET_LENGTH || !key.startsWith(API_KEY_PREFIX)) throw invalid("invalid API key", "api_key");
    const tenant = await options.directory.resolveApiKey(key);
    if (!tenant) throw invalid("invalid API key", "api_key");
    if (!tenant.active) throw new ConnectError("tenant is inactive", Code.PermissionDenied);
    return { kind: "api_key", tenantId: tenant.tenantId };
  }

  async function authenticateChannel(secret: string): Promise<Principal> {
    if (secret.length !== SECRET_LENGTH) throw invalid("invalid channel secret", "channel_secret");
    const channel = await options.directory.resolveChannelSecret(secret);
    if (!channel) throw invalid("invalid channel secret", "channel_secret");
    if (!channel.tenantActive) throw new ConnectError("tenant is inactive", Code.PermissionDenied);
    return {
      kind: "channel",
      tenantId: channel.tenantId,
      channelId: channel.channelId,
      channelActive: channel.channelActive,
    };
  }

  async function authenticateToken(token: string, allow: Set<PrincipalKind>): Promise<Principal> {
    if (!JWT_SHAPE.test(token)) throw invalid("malformed bearer token", "jwt");
    let claims: Awaited<ReturnType<TokenVerifier["verify"]>>;
    try {
      claims = await options.verifier.verify(token);
    } catch (error) {
      if (error instanceof InvalidTokenError) throw invalid(error.message, "jwt");
      throw error;
    }
    const principal = principalOfClaims(claims);
    const kind = principal.kind === "oauth_client" ? PrincipalKind.OAUTH_CLIENT : PrincipalKind.END_USER;
    if (!allow.has(kind)) throw notAllowed(principal.kind);
    const tenant = await options.directory.tenantStatus(claims.tenant_id);
    if (!tenant.exists) throw invalid("unknown tenant", "jwt", claims.tenant_id);
    if (!tenant.active) throw new ConnectError("tenant is inactive", Code.PermissionDenied);
    return principal;
  }
}

/**
 * The access interceptor every service registers its handlers behind:
 * authenticates (createAuthenticator), puts the principal in the context,
 * counts state-changing calls against the rate limits (a limited call never
 * reaches its handler), then validates the request message.
 */
export function createAccessInterceptor(options: AccessOptions): Interceptor {
  const authenticateCall = createAuthenticator(options);
  // Measured outside the checks, so refused calls (unauthenticated, rate limited) are counted too.
  return (next) =>
    rpcMetricsInterceptor(async (req) => {
      const principal = req.contextValues.get(kAuthenticated) ?? (await authenticateCall(req.method, req.header));
      req.contextValues.set(kPrincipal, principal);
      const limitHeaders = isStateChanging(req.method)
        ? await limitWrite(principal, req.method, req.header)
        : undefined;
      if (!req.stream) validateMessage(req.method.input, req.message);
      const audited = isOperator(principal) && isStateChanging(req.method);
      try {
        const res = await next(req);
        if (limitHeaders) for (const [name, value] of Object.entries(limitHeaders)) res.header.set(name, value);
        if (audited) options.auditAction(operatorAction(principal, req, "ok"));
        return res;
      } catch (error) {
        if (audited) options.auditAction(operatorAction(principal, req, codeName(ConnectError.from(error).code)));
        throw error;
      }
    });

  async function limitWrite(principal: Principal, method: DescMethod, header: Headers) {
    if (principal.kind === "internal") return undefined;
    const tenantId = "tenantId" in principal ? principal.tenantId : undefined;
    const tenantLimit = tenantId ? (await options.directory.tenantStatus(tenantId)).rateLimitPerMinute : 0;
    const ip = accessRuleOf(method).rule?.providerWebhook ? undefined : (header.get(CLIENT_IP_HEADER) ?? "");
    // A tenant's own limit is its servers' too (API key, OAuth clients, the channel secret minting a
    // token per visitor); end users keep the per-user cap.
    const tenantServer = principal.kind !== "end_user";
    const credential = credentialOf(principal);
    return options.rateLimits.consumeWrite({
      credentialLimit: tenantServer ? tenantLimit : 0,
      tenantLimit,
      ...(credential === undefined ? {} : { credential }),
      ...(tenantId === undefined ? {} : { tenantId }),
      ...(ip === undefined ? {} : { ip }),
    });
  }
}

/** The operator, with the admin token or a console session, or acting as a tenant through a token it minted. */
function isOperator(principal: Principal): boolean {
  return (
    principal.kind === "operator" || (principal.kind === "oauth_client" && principal.clientId === OPERATOR_SUBJECT)
  );
}

// The request fields that name what a call acts on, most specific first.
const TARGET_FIELDS = ["id", "deliveryId", "activityId", "conversationId", "channelId", "clientId", "tenantId"];

function operatorAction(
  principal: Principal,
  req: { method: DescMethod; message: unknown; header: Headers },
  outcome: string,
): OperatorAction {
  const message = req.message as Record<string, unknown>;
  const target = TARGET_FIELDS.map((field) => message[field]).find((v) => typeof v === "string" && v !== "");
  const tenantId = "tenantId" in principal ? principal.tenantId : message.tenantId;
  return {
    ...(principal.kind === "operator" && principal.sessionId ? { sessionId: principal.sessionId } : {}),
    action: `${req.method.parent.typeName}/${req.method.name}`,
    ...(typeof target === "string" ? { target } : {}),
    ...(typeof tenantId === "string" && tenantId ? { tenantId } : {}),
    sourceIp: req.header.get(CLIENT_IP_HEADER) ?? "",
    outcome,
  };
}

/** Who a rate limit counts: the credential's identity, never its secret. */
function credentialOf(principal: Principal): string | undefined {
  switch (principal.kind) {
    case "api_key":
      return `key:${principal.tenantId}`;
    case "oauth_client":
      return `client:${principal.clientId}`;
    case "end_user":
      return `user:${principal.tenantId}:${principal.userId}`;
    case "channel":
      return `channel:${principal.channelId}`;
    // The operator (one token, from allowlisted addresses only) is limited per address alone.
    default:
      return undefined;
  }
}

const stateChanging = new WeakMap<DescMethod, boolean>();

/**
 * Reads (GET bindings, and RPCs declared free of side effects) are not
 * counted against the write limits. Read from the descriptor once: options
 * are decoded on every getOption.
 */
function isStateChanging(method: DescMethod): boolean {
  let writes = stateChanging.get(method);
  if (writes === undefined) {
    if (method.methodKind !== "unary") writes = false;
    else if (hasOption(method, http)) writes = getOption(method, http).pattern.case !== "get";
    else writes = method.idempotency !== MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS;
    stateChanging.set(method, writes);
  }
  return writes;
}

function failureKey(address: string): string {
  return `ip:${address}`;
}

function invalid(message: string, kind: string, tenantId?: string): AuthError {
  return new AuthError(message, Code.Unauthenticated, kind, tenantId);
}

function notAllowed(kind: string): ConnectError {
  return new ConnectError(`a ${kind.replace("_", " ")} credential cannot call this method`, Code.PermissionDenied);
}

const accessRules = new WeakMap<DescMethod, { rule: AccessRule | undefined; allow: Set<PrincipalKind> }>();

/** The method's access option, read from its descriptor once. */
function accessRuleOf(method: DescMethod) {
  let entry = accessRules.get(method);
  if (!entry) {
    const rule = hasOption(method, access) ? getOption(method, access) : undefined;
    entry = { rule, allow: new Set(rule?.allow ?? []) };
    accessRules.set(method, entry);
  }
  return entry;
}

/** One cookie's value from a Cookie header (RFC 6265 §5.4: `name=value; name2=value2`). */
export function cookieValue(cookieHeader: string | null, name: string): string | undefined {
  if (!cookieHeader) return undefined;
  for (const pair of cookieHeader.split(";")) {
    const at = pair.indexOf("=");
    if (at > 0 && pair.slice(0, at).trim() === name) return pair.slice(at + 1).trim() || undefined;
  }
  return undefined;
}

function bearerToken(header: Headers): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header.get("authorization") ?? "");
  return match?.[1];
}

/** The tenant of a tenant-scoped caller; operators and anonymous callers have none. */
export function tenantOf(principal: Principal): string {
  if ("tenantId" in principal) return principal.tenantId;
  throw new ConnectError("a tenant credential is required", Code.PermissionDenied);
}
