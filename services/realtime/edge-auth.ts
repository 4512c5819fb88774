import type { CredentialDirectory } from "../common/access/directory-client.js";
import {
  InvalidTokenError,
  principalOfClaims,
  type TokenPrincipal,
  type TokenVerifier,
} from "../common/access/token-verifier.js";

export type EdgePrincipal = TokenPrincipal;

export class UpgradeError extends Error {
  constructor(
    readonly status: string,
    message: string,
  ) {
    super(message);
  }
}

/** The token of an upgrade request: `?token=` or a `bearer.<jwt>` WebSocket subprotocol. */
export function tokenOf(query: URLSearchParams, protocols: string): { token?: string | undefined; protocol: string } {
  const offered = protocols
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean);
  const bearer = offered.find((p) => p.startsWith("bearer."));
  // A browser requires the server to pick one of the offered protocols.
  const protocol = offered.find((p) => !p.startsWith("bearer.")) ?? bearer ?? "";
  return { token: query.get("token") ?? bearer?.slice("bearer.".length), protocol };
}

/** Verifies a token with the shared verifier and checks its tenant, as the access interceptor does. */
export async function authenticateEdge(
  token: string | undefined,
  verifier: TokenVerifier,
  directory: CredentialDirectory,
): Promise<{ principal: EdgePrincipal; expiresAt: number }> {
  if (!token) throw new UpgradeError("401 Unauthorized", "missing token");
  let claims: Awaited<ReturnType<TokenVerifier["verify"]>>;
  try {
    claims = await verifier.verify(token);
  } catch (error) {
    if (error instanceof InvalidTokenError) throw new UpgradeError("401 Unauthorized", error.message);
    throw error;
  }
  const tenant = await directory.tenantStatus(claims.tenant_id);
  if (!tenant.exists) throw new UpgradeError("401 Unauthorized", "unknown tenant");
  if (!tenant.active) throw new UpgradeError("403 Forbidden", "tenant is inactive");
  const principal = principalOfClaims(claims);
  return { principal, expiresAt: (claims.exp as number) * 1000 };
}

/** Who counts as one user for the per-user connection cap. */
export function userKeyOf(principal: EdgePrincipal): string {
  return principal.kind === "end_user"
    ? `${principal.tenantId}/user/${principal.userId}`
    : `${principal.tenantId}/client/${principal.clientId}`;
}
