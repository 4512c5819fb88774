import { type CryptoKey, calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type JWK } from "jose";
import type { Pool } from "../common/db/pool.js";
import type { Logger } from "../common/obs/logger.js";
import type { Keyring } from "../common/secrets/keyring.js";
import { openSigningKey, type SealedSigningKey, sealSigningKey } from "./key-encryption.js";
import { reportSigningKey } from "./metrics.js";

const SIGNING_ALG = "ES256";
// Longest-lived token we sign (client tokens, 1 h) plus clock skew: how long a
// replaced key must keep verifying.
const VERIFY_GRACE_SECONDS = 3600 + 300;
// Other processes may have rotated; re-read the current key this often.
const CURRENT_KEY_TTL_MS = 30_000;
// A new key signs only once it has been published this long, so every
// verifier has had the chance to load it (see token-verifier's refresh interval).
const PUBLISH_DELAY_SECONDS = 5;
const ROTATION_LOCK_KEY = 7_310_042_003;

interface Current {
  key: SigningKey;
  validUntil: number;
  createdAtMs: number;
}

export interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
}

/**
 * ES256 signing keys in PostgreSQL. The newest key signs; replaced keys keep
 * verifying until every token they signed has expired. Rotation happens on a
 * schedule and on demand, under an advisory lock so that processes sharing
 * the database rotate once.
 */
export function createSigningKeys(options: {
  pool: Pool;
  keyring: Keyring;
  log: Logger;
  rotationHours: number;
  /** Tells this node's verifiers to reload the key set. */
  onRotated: () => void;
}) {
  const { pool, keyring } = options;
  let current: Current | undefined;
  // Which key signs now and since when, for the age metric: read without opening the private key, which
  // a node that only verifies (or runs with another keyring) may never do.
  let chosen: { createdAtMs: number; validUntil: number } | undefined;
  let timer: NodeJS.Timeout | undefined;
  let refreshing = false;
  let started = false;
  // Read at scrape time; a stale choice is re-read in the background, so the age follows rotations elsewhere.
  const stopReporting = reportSigningKey(() => {
    if (started && !refreshing && (!chosen || Date.now() >= chosen.validUntil)) {
      refreshing = true;
      choose()
        .then((fresh) => {
          chosen = fresh;
        })
        .catch((error) => options.log.warn({ err: error }, "current signing key not re-read"))
        .finally(() => {
          refreshing = false;
        });
    }
    return chosen?.createdAtMs;
  });

  async function create(): Promise<string> {
    const client = await pool.connect();
    try {
      await client.query("BEGIN");
      await client.query("SELECT pg_advisory_xact_lock($1)", [ROTATION_LOCK_KEY]);
      const { publicKey, privateKey } = await generateKeyPair(SIGNING_ALG, { extractable: true });
      const publicJwk = await exportJWK(publicKey);
      const kid = await calculateJwkThumbprint(publicJwk);
      const sealed = sealSigningKey(keyring, kid, await exportJWK(privateKey));
      await client.query(
        "UPDATE signing_keys SET verify_until = now() + make_interval(secs => $1) WHERE verify_until IS NULL",
        [VERIFY_GRACE_SECONDS],
      );
      await client.query(
        "INSERT INTO signing_keys (kid, alg, public_jwk, private_jwk_enc, data_key) VALUES ($1, $2, $3, $4, $5)",
        [
          kid,
          SIGNING_ALG,
          { ...publicJwk, kid, alg: SIGNING_ALG, use: "sig" },
          sealed.private_jwk_enc,
          sealed.data_key,
        ],
      );
      await client.query("COMMIT");
      current = undefined;
      options.onRotated();
      options.log.info({ kid }, "signing key created");
      return kid;
    } catch (error) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  /** Creates a key when there is none or the newest is older than the rotation period. */
  async function rotateIfDue(): Promise<void> {
    const { rows } = await pool.query<{ due: boolean }>(
      `SELECT coalesce(max(created_at) < now() - make_interval(hours => $1), true) AS due
       FROM signing_keys WHERE verify_until IS NULL`,
      [options.rotationHours],
    );
    if (rows[0]?.due) await create();
  }

  /**
   * The newest key published long enough ago (else the oldest live one, as at
   * first start), and until when that choice holds.
   */
  async function currentRow() {
    const { rows } = await pool.query<SealedSigningKey & { next_ms: number | null; created_ms: number }>(
      `SELECT kid, private_jwk_enc, data_key, extract(epoch FROM created_at)::float8 * 1000 AS created_ms,
         (SELECT extract(epoch FROM min(created_at)) * 1000 + $1 * 1000 FROM signing_keys
          WHERE created_at > now() - make_interval(secs => $1)) AS next_ms
       FROM signing_keys WHERE verify_until IS NULL OR verify_until > now()
       ORDER BY created_at <= now() - make_interval(secs => $1) DESC,
         CASE WHEN created_at <= now() - make_interval(secs => $1) THEN created_at END DESC NULLS LAST,
         created_at LIMIT 1`,
      [PUBLISH_DELAY_SECONDS],
    );
    const row = rows[0];
    if (!row) throw new Error("no signing key");
    // Re-read when a pending key becomes due, or after the TTL (rotation elsewhere).
    const next = row.next_ms === null ? Number.POSITIVE_INFINITY : Number(row.next_ms);
    return { row, validUntil: Math.min(Date.now() + CURRENT_KEY_TTL_MS, next), createdAtMs: Number(row.created_ms) };
  }

  async function choose() {
    const { validUntil, createdAtMs } = await currentRow();
    return { validUntil, createdAtMs };
  }

  async function loadCurrent(): Promise<Current> {
    const { row, validUntil, createdAtMs } = await currentRow();
    const jwk = openSigningKey(keyring, row) as JWK;
    const key = { kid: row.kid, privateKey: (await importJWK(jwk, SIGNING_ALG)) as CryptoKey };
    chosen = { validUntil, createdAtMs };
    return { key, validUntil, createdAtMs };
  }

  return {
    async start(): Promise<void> {
      await rotateIfDue();
      chosen = await choose();
      started = true;
      timer = setInterval(
        () => {
          rotateIfDue().catch((error) => options.log.error({ err: error }, "signing key rotation failed"));
        },
        60 * 60 * 1000,
      );
      timer.unref();
    },
    stop(): void {
      clearInterval(timer);
      started = false;
      stopReporting();
    },
    rotate: create,
    async current(): Promise<SigningKey> {
      if (!current || Date.now() >= current.validUntil) current = await loadCurrent();
      return current.key;
    },
    /** Public keys that still verify, as a JWK Set's keys. */
    async publicKeys(): Promise<JWK[]> {
      const { rows } = await pool.query<{ public_jwk: JWK }>(
        "SELECT public_jwk FROM signing_keys WHERE verify_until IS NULL OR verify_until > now() ORDER BY created_at DESC",
      );
      return rows.map((r) => r.public_jwk);
    },
  };
}

export type SigningKeys = ReturnType<typeof createSigningKeys>;
