import { randomUUID } from "node:crypto";
import { SignJWT } from "jose";
import { type ConvergerClaims, TOKEN_ALG, TOKEN_AUDIENCE } from "../common/access/token-verifier.js";
import type { SigningKeys } from "./signing-keys.js";

export const ACCESS_TOKEN_SECONDS = 15 * 60;
export const CLIENT_TOKEN_SECONDS = 60 * 60;
export const REFRESH_TOKEN_DAYS = 30;

/** Mints the two kinds of JWT we sign, always with the current key's kid. */
export function createTokenIssuer(keys: SigningKeys, issuer: string) {
  async function sign(claims: Omit<ConvergerClaims, "sub">, subject: string, lifetimeSeconds: number) {
    const key = await keys.current();
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT(claims)
      .setProtectedHeader({ alg: TOKEN_ALG, kid: key.kid, typ: "JWT" })
      .setIssuer(issuer)
      .setAudience(TOKEN_AUDIENCE)
      .setSubject(subject)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + lifetimeSeconds)
      .setJti(randomUUID())
      .sign(key.privateKey);
  }

  return {
    /** OAuth access token of a client (RFC 9068 shape: sub = client id). */
    access(clientId: string, tenantId: string, scope: string, lifetimeSeconds = ACCESS_TOKEN_SECONDS) {
      return sign({ token_use: "access", tenant_id: tenantId, scope }, clientId, lifetimeSeconds);
    },
    /** End-user token for one conversation (Direct Line style). */
    client(user: { id: string; name: string }, grant: { tenantId: string; channelId: string; conversationId: string }) {
      const claims: Omit<ConvergerClaims, "sub"> = {
        token_use: "client",
        tenant_id: grant.tenantId,
        channel_id: grant.channelId,
        conversation_id: grant.conversationId,
      };
      if (user.name) claims.name = user.name;
      return sign(claims, user.id, CLIENT_TOKEN_SECONDS);
    },
  };
}

export type TokenIssuer = ReturnType<typeof createTokenIssuer>;
