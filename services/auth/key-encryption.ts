import type { Pool } from "../common/db/pool.js";
import { countMissing, DEFAULT_KEY_ID, type Keyring, MissingKeysError } from "../common/secrets/keyring.js";

/** A signing key as stored: its private JWK sealed under its own data key (NULL: sealed by the single-key format). */
export interface SealedSigningKey {
  kid: string;
  data_key: Buffer | null;
  private_jwk_enc: Buffer;
}

const FIELD = "private_jwk";
const rowOf = (kid: string) => `auth.signing_keys:${kid}`;
// Keys that may still sign or verify; expired ones are never opened again.
const LIVE = "verify_until IS NULL OR verify_until > now()";

/** The private JWK of a new signing key, sealed with the signing key's id as additional data. */
export function sealSigningKey(keyring: Keyring, kid: string, privateJwk: object) {
  const { dataKey, wrapped } = keyring.createDataKey(rowOf(kid));
  return { data_key: wrapped, private_jwk_enc: dataKey.seal(FIELD, Buffer.from(JSON.stringify(privateJwk))) };
}

export function openSigningKey(keyring: Keyring, row: SealedSigningKey): unknown {
  const plain = row.data_key
    ? keyring.openDataKey(row.data_key, rowOf(row.kid)).open(FIELD, row.private_jwk_enc)
    : keyring.openLegacy(row.private_jwk_enc);
  return JSON.parse(plain.toString("utf8"));
}

const kidOfRow = (keyring: Keyring, row: Pick<SealedSigningKey, "data_key">) =>
  row.data_key ? keyring.kidOf(row.data_key) : DEFAULT_KEY_ID;

/** Refuses to go on when live signing keys name key-encryption keys this keyring lacks. */
export async function checkSigningKeys(pool: Pool, keyring: Keyring): Promise<void> {
  const { rows } = await pool.query<{ data_key: Buffer | null }>(`SELECT data_key FROM signing_keys WHERE ${LIVE}`);
  const missing = countMissing(
    keyring,
    rows.map((row) => kidOfRow(keyring, row)),
  );
  if (missing.size > 0) throw new MissingKeysError("signing keys", missing);
}

/**
 * Re-wraps every live signing key's data key under the active key, in one
 * transaction: a key it cannot open fails the whole call and nothing is
 * written. Keys in the single-key format get their own data key on the way
 * (their JWK is sealed again, once).
 */
export async function rewrapSigningKeys(pool: Pool, keyring: Keyring) {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    const { rows } = await client.query<SealedSigningKey>(
      `SELECT kid, data_key, private_jwk_enc FROM signing_keys WHERE ${LIVE} FOR UPDATE`,
    );
    const missing = countMissing(
      keyring,
      rows.map((row) => kidOfRow(keyring, row)),
    );
    if (missing.size > 0) throw new MissingKeysError("signing keys", missing);
    const changed: SealedSigningKey[] = [];
    for (const row of rows) {
      if (!row.data_key)
        changed.push({ kid: row.kid, ...sealSigningKey(keyring, row.kid, openSigningKey(keyring, row) as object) });
      else if (keyring.kidOf(row.data_key) !== keyring.activeKid)
        changed.push({ ...row, data_key: keyring.rewrap(row.data_key, rowOf(row.kid)) });
    }
    for (const row of changed) {
      await client.query("UPDATE signing_keys SET data_key = $2, private_jwk_enc = $3 WHERE kid = $1", [
        row.kid,
        row.data_key,
        row.private_jwk_enc,
      ]);
    }
    await client.query("COMMIT");
    return { rewrapped: changed.length, alreadyActive: rows.length - changed.length };
  } catch (error) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}
