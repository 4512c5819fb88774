import { randomBytes, randomUUID } from "node:crypto";
import { calculateJwkThumbprint, exportJWK, generateKeyPair } from "jose";
import { hashSecret } from "../common/access/access.js";
import type { SigningKeys } from "./signing-keys.js";
import { CLIENT_SECRET_PREFIX, type ClientStore, type OAuthClientRow } from "./store/clients.js";
import { REFRESH_TOKEN_PREFIX, type RefreshGrant, type RefreshTokenStore } from "./store/refresh-tokens.js";

/**
 * In-memory stand-ins for the auth service's PostgreSQL stores, for handler
 * tests: the same outcomes as the SQL (secrets kept as hashes, a rotated
 * refresh token presented again revokes its family).
 */
export function createFakeAuthStores() {
  const clients = new Map<string, OAuthClientRow>();
  const tokens = new Map<string, RefreshGrant & { revoked: boolean; replaced: boolean }>();
  const newSecret = () => CLIENT_SECRET_PREFIX + randomBytes(32).toString("base64url");

  const clientStore: ClientStore = {
    async create(tenantId, name, scopes) {
      const secret = newSecret();
      const now = new Date();
      const row: OAuthClientRow = {
        client_id: `cvc_${randomBytes(16).toString("base64url")}`,
        tenant_id: tenantId,
        name,
        scopes,
        secret_hash: hashSecret(secret),
        disabled: false,
        created_at: now,
        sort_key: now.toISOString(),
      };
      clients.set(row.client_id, row);
      return { row, secret };
    },
    get: async (clientId) => clients.get(clientId),
    list: async (tenantId, page) =>
      [...clients.values()].filter((c) => c.tenant_id === tenantId).slice(0, page.limit + 1),
    async disable(tenantId, clientId) {
      const row = clients.get(clientId);
      if (row?.tenant_id !== tenantId) return undefined;
      row.disabled = true;
      for (const t of tokens.values()) if (t.clientId === clientId) t.revoked = true;
      return row;
    },
    async rotateSecret(tenantId, clientId) {
      const row = clients.get(clientId);
      if (row?.tenant_id !== tenantId) return undefined;
      const secret = newSecret();
      row.secret_hash = hashSecret(secret);
      return { row, secret };
    },
  };

  const issue = (grant: RefreshGrant) => {
    const token = REFRESH_TOKEN_PREFIX + randomBytes(32).toString("base64url");
    tokens.set(token, { ...grant, revoked: false, replaced: false });
    return token;
  };
  const refreshTokens: RefreshTokenStore = {
    issue: async (grant) => issue({ ...grant, familyId: randomUUID() }),
    async rotate(token, narrowScope) {
      const row = tokens.get(token);
      if (!row) return { error: "unknown" };
      if (row.replaced) {
        for (const t of tokens.values()) if (t.familyId === row.familyId) t.revoked = true;
        return { error: "reused" };
      }
      if (row.revoked) return { error: "revoked" };
      if (clients.get(row.clientId)?.disabled) return { error: "disabled" };
      const scope = narrowScope(row.scope);
      if (scope === undefined) return { error: "scope" };
      const grant = { clientId: row.clientId, tenantId: row.tenantId, familyId: row.familyId, scope };
      row.revoked = true;
      row.replaced = true;
      return { ok: { grant, token: issue(grant) } };
    },
    async revoke(token) {
      const row = tokens.get(token);
      if (row) row.revoked = true;
    },
  };

  return { clientStore, refreshTokens };
}

/** One ES256 key that signs and verifies, without the database. */
export async function createFakeSigningKeys(): Promise<SigningKeys> {
  const { publicKey, privateKey } = await generateKeyPair("ES256", { extractable: true });
  const jwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(jwk);
  return {
    start: async () => undefined,
    stop: () => undefined,
    rotate: async () => kid,
    current: async () => ({ kid, privateKey }),
    publicKeys: async () => [{ ...jwk, kid, alg: "ES256", use: "sig" }],
  };
}
