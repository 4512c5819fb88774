import { type CryptoKey, errors, importJWK, type JWK, type JWTPayload, jwtVerify } from "jose";
import type { Principal } from "./context.js";

export const TOKEN_ALG = "ES256";
export const TOKEN_AUDIENCE = "converger";
/** Bus topic on which a node announces a new signing key to its verifiers. */
export const SIGNING_KEYS_TOPIC = "signing_keys";
/** Required by design: at most 30 s of clock skew. */
const CLOCK_TOLERANCE_S = 30;
// An unknown kid triggers at most one key refresh in this interval; keys
// start signing only after a longer publish delay (signing-keys.ts).
const REFRESH_MIN_INTERVAL_MS = 2_000;
// Keys are re-read at least this often (rotation by another process).
const KEYS_MAX_AGE_MS = 60_000;
// Verified tokens remembered: clients send the same token with every request,
// and one ES256 verification costs ~70 µs of CPU (bench/auth.ts).
const DEFAULT_CACHE_SIZE = 10_000;
const CACHE_TTL_MS = 60_000;

/** Claims of the tokens we sign. */
export interface ConvergerClaims extends JWTPayload {
  token_use: "access" | "client";
  tenant_id: string;
  scope?: string;
  conversation_id?: string;
  channel_id?: string;
  name?: string;
}

export class InvalidTokenError extends Error {}

/** Who a verified token speaks for. */
export type TokenPrincipal = Extract<Principal, { kind: "oauth_client" } | { kind: "end_user" }>;

/** The principal of verified claims: the one mapping every service and the edge use. */
export function principalOfClaims(claims: ConvergerClaims): TokenPrincipal {
  const subject = claims.sub as string;
  if (claims.token_use === "access") {
    return {
      kind: "oauth_client",
      tenantId: claims.tenant_id,
      clientId: subject,
      scopes: (claims.scope ?? "").split(" ").filter(Boolean),
    };
  }
  return {
    kind: "end_user",
    tenantId: claims.tenant_id,
    userId: subject,
    userName: claims.name ?? "",
    conversationId: claims.conversation_id ?? "",
    channelId: claims.channel_id ?? "",
  };
}

/**
 * The one JWT verifier of every service and the edge: ES256 only, issuer,
 * audience, exp, iat and nbf required, ≤ 30 s clock tolerance. The key is
 * looked up by kid in our own key set only; jku, x5u and embedded jwk headers
 * are never followed.
 */
export function createTokenVerifier(options: { issuer: string; fetchKeys: () => Promise<JWK[]>; cacheSize?: number }) {
  const cacheSize = options.cacheSize ?? DEFAULT_CACHE_SIZE;
  // token → claims and when to stop trusting the entry; cleared whenever the key set changes.
  const verified = new Map<string, { claims: ConvergerClaims; until: number }>();
  // Entries past their time are dropped every few seconds, so tokens no longer sent do not hold memory.
  const sweeper = setInterval(() => {
    const now = Date.now();
    for (const [token, entry] of verified) if (entry.until <= now) verified.delete(token);
  }, CACHE_TTL_MS / 6);
  sweeper.unref();
  let keys = new Map<string, CryptoKey>();
  let loadedAt = 0;
  let loading: Promise<void> | undefined;

  async function reload(): Promise<void> {
    loading ??= (async () => {
      try {
        const next = new Map<string, CryptoKey>();
        for (const jwk of await options.fetchKeys()) {
          if (jwk.kid && jwk.kty === "EC" && jwk.crv === "P-256") {
            next.set(jwk.kid, (await importJWK(jwk, TOKEN_ALG)) as CryptoKey);
          }
        }
        keys = next;
        loadedAt = Date.now();
        verified.clear();
      } finally {
        loading = undefined;
      }
    })();
    await loading;
  }

  async function keyFor(kid: string | undefined): Promise<CryptoKey> {
    if (typeof kid !== "string" || kid.length === 0 || kid.length > 128) throw new InvalidTokenError("missing kid");
    if (Date.now() - loadedAt > KEYS_MAX_AGE_MS) await reload();
    let key = keys.get(kid);
    if (!key && Date.now() - loadedAt > REFRESH_MIN_INTERVAL_MS) {
      await reload();
      key = keys.get(kid);
    }
    if (!key) throw new InvalidTokenError("unknown signing key");
    return key;
  }

  return {
    /** Reload the key set on next use (a key was rotated on this node). */
    forget(): void {
      loadedAt = 0;
    },
    async verify(token: string): Promise<ConvergerClaims> {
      const hit = verified.get(token);
      if (hit && hit.until > Date.now() && Date.now() - loadedAt <= KEYS_MAX_AGE_MS) return hit.claims;
      const claims = await verifyUncached(token);
      if (cacheSize > 0) {
        if (verified.size >= cacheSize) verified.clear();
        // Never past exp: the cache must not outlive the token.
        verified.set(token, { claims, until: Math.min(Date.now() + CACHE_TTL_MS, (claims.exp as number) * 1000) });
      }
      return claims;
    },
  };

  async function verifyUncached(token: string): Promise<ConvergerClaims> {
    try {
      const { payload } = await jwtVerify<ConvergerClaims>(token, (header) => keyFor(header.kid), {
        algorithms: [TOKEN_ALG],
        issuer: options.issuer,
        audience: TOKEN_AUDIENCE,
        clockTolerance: CLOCK_TOLERANCE_S,
        requiredClaims: ["exp", "iat", "nbf", "sub", "jti"],
      });
      if (typeof payload.tenant_id !== "string" || !["access", "client"].includes(payload.token_use)) {
        throw new InvalidTokenError("not a Converger token");
      }
      return payload;
    } catch (error) {
      if (error instanceof InvalidTokenError) throw error;
      if (error instanceof errors.JWTExpired) throw new InvalidTokenError("token expired");
      if (error instanceof errors.JOSEError) throw new InvalidTokenError(`invalid token (${error.code})`);
      throw error;
    }
  }
}

export type TokenVerifier = ReturnType<typeof createTokenVerifier>;
