import { createHash, timingSafeEqual } from "node:crypto";
import { type DescMethod, getOption, hasOption } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { type AccessRule, access, PrincipalKind } from "../../gen/converger/v1/options_pb.js";
import { createAddressMatcher } from "./cidr.js";
import { CLIENT_IP_HEADER, kPrincipal, type Principal } from "./context.js";
import { validateMessage } from "./validation.js";

/** Looks up the tenant an API key belongs to. Implemented by the service owning tenants. */
export interface ApiKeyResolver {
  resolveApiKey(key: string): Promise<{ tenantId: string; active: boolean } | undefined>;
}

export interface AccessOptions {
  adminToken: string;
  adminAllowedIps: string[];
  apiKeys: ApiKeyResolver;
}

export const API_KEY_PREFIX = "cvg_";
// cvg_ + base64url(32 bytes).
const API_KEY_LENGTH = API_KEY_PREFIX.length + 43;

export function hashSecret(secret: string): Buffer {
  return createHash("sha256").update(secret).digest();
}

/**
 * Authenticates the caller against the RPC's `(converger.v1.access)` rule,
 * puts the principal in the context, then validates the request message.
 * Every service registers its handlers behind this one interceptor.
 */
export function createAccessInterceptor(options: AccessOptions): Interceptor {
  const isAdminAddress = createAddressMatcher(options.adminAllowedIps);
  const adminTokenHash = hashSecret(options.adminToken);
  return (next) => async (req) => {
    const { rule, allow } = accessRuleOf(req.method);
    if (allow.size === 0) throw new ConnectError("this method is not callable", Code.PermissionDenied);
    const principal = await authenticate(req.header, allow);
    if (principal.kind === "oauth_client" && rule?.scope && !principal.scopes.includes(rule.scope)) {
      throw new ConnectError(`the "${rule.scope}" scope is required`, Code.PermissionDenied);
    }
    req.contextValues.set(kPrincipal, principal);
    if (!req.stream) validateMessage(req.method.input, req.message);
    return next(req);
  };

  async function authenticate(header: Headers, allow: Set<PrincipalKind>): Promise<Principal> {
    if (allow.has(PrincipalKind.OPERATOR)) return authenticateOperator(header);
    const apiKey = header.get("x-api-key");
    if (allow.has(PrincipalKind.API_KEY) && apiKey !== null) return authenticateApiKey(apiKey);
    if (allow.has(PrincipalKind.PUBLIC)) return { kind: "public" };
    throw unauthenticated("missing credentials: send X-API-Key or Authorization: Bearer");
  }

  function authenticateOperator(header: Headers): Principal {
    // The address check comes first: outside the allowlist even the right token gets 403.
    const address = header.get(CLIENT_IP_HEADER) ?? "";
    if (!isAdminAddress(address))
      throw new ConnectError("admin access is not allowed from this address", Code.PermissionDenied);
    const token = bearerToken(header);
    if (!token) throw unauthenticated("missing admin token");
    if (!timingSafeEqual(hashSecret(token), adminTokenHash)) throw unauthenticated("invalid admin token");
    return { kind: "operator" };
  }

  async function authenticateApiKey(key: string): Promise<Principal> {
    if (key.length !== API_KEY_LENGTH || !key.startsWith(API_KEY_PREFIX)) throw unauthenticated("invalid API key");
    const tenant = await options.apiKeys.resolveApiKey(key);
    if (!tenant) throw unauthenticated("invalid API key");
    if (!tenant.active) throw new ConnectError("tenant is inactive", Code.PermissionDenied);
    return { kind: "api_key", tenantId: tenant.tenantId };
  }
}

const accessRules = new WeakMap<DescMethod, { rule?: AccessRule; allow: Set<PrincipalKind> }>();

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

function bearerToken(header: Headers): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header.get("authorization") ?? "");
  return match?.[1];
}

function unauthenticated(message: string): ConnectError {
  return new ConnectError(message, Code.Unauthenticated);
}

/** The tenant of a tenant-scoped caller; operators and anonymous callers have none. */
export function tenantOf(principal: Principal): string {
  if ("tenantId" in principal) return principal.tenantId;
  throw new ConnectError("a tenant credential is required", Code.PermissionDenied);
}
