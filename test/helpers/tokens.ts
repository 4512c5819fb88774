import { type CryptoKey, importJWK, type JWK, SignJWT } from "jose";
import { openSigningKey } from "../../services/auth/key-encryption.js";
import { createLogger } from "../../services/common/obs/logger.js";
import { loadKeyring } from "../../services/common/secrets/load.js";
import type { TestApp } from "./app.js";

/**
 * The app's current signing key, read the way an insider would (database +
 * the app's keyring, from its configuration and DATA_DIR): lets tests forge
 * tokens with a valid signature but bad claims.
 */
async function serverSigningKey(t: TestApp): Promise<{ kid: string; key: CryptoKey }> {
  const keyring = loadKeyring(t.app.config, createLogger("silent"));
  const { rows } = await t.db.query(
    "SELECT kid, data_key, private_jwk_enc FROM signing_keys WHERE verify_until IS NULL ORDER BY created_at DESC LIMIT 1",
  );
  const jwk = openSigningKey(keyring, rows[0]) as JWK;
  return { kid: rows[0].kid, key: (await importJWK(jwk, "ES256")) as CryptoKey };
}

export interface ForgeOptions {
  claims?: Record<string, unknown>;
  iss?: string;
  aud?: string;
  exp?: number | null;
  nbf?: number;
  kid?: string;
}

/** A token signed with the server's real key, with whatever claims a test wants. */
export async function forge(t: TestApp, options: ForgeOptions = {}): Promise<string> {
  const { kid, key } = await serverSigningKey(t);
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ token_use: "access", scope: "conversations:read", ...options.claims })
    .setProtectedHeader({ alg: "ES256", kid: options.kid ?? kid })
    .setIssuer(options.iss ?? t.app.config.publicUrl)
    .setAudience(options.aud ?? "converger")
    .setSubject("cvc_forged")
    .setIssuedAt(now)
    .setNotBefore(options.nbf ?? now)
    .setJti(crypto.randomUUID());
  if (options.exp !== null) jwt.setExpirationTime(options.exp ?? now + 600);
  return jwt.sign(key);
}
