import type { JsonObject } from "@bufbuild/protobuf";
import type { Pool } from "../../common/db/pool.js";
import { countMissing, type DataKey, type Keyring, MissingKeysError } from "../../common/secrets/keyring.js";
import { openConfig, sealConfig } from "../channel-config.js";

/** A channel's columns as stored: sealed (data_key set) or, before the service sealed it, in clear. */
export interface StoredChannel {
  id: string;
  tenant_id: string;
  type: string;
  config: JsonObject;
  secret: string | null;
  data_key: Buffer | null;
  secret_sealed: Buffer | null;
}

export const SEALED_COLUMNS = "data_key, secret_sealed";

/** What a sealed channel row stores in place of its secret and secret config values. */
export interface SealedColumns {
  config: JsonObject;
  secret_sealed: Buffer;
}

// The row the wrapping and every field are bound to: moved elsewhere, they do not open.
const rowOf = (tenantId: string, id: string) => `conversations.channels:${tenantId}:${id}`;

/** Seals and opens channel rows with the keyring; the stores call it before writing and after reading. */
export function createChannelSealer(keyring: Keyring) {
  const sealWith = (key: DataKey, type: string, config: JsonObject, secret: string): SealedColumns => ({
    config: sealConfig(type, config, key),
    secret_sealed: key.seal("secret", Buffer.from(secret)),
  });
  return {
    /** A new row's columns, under a fresh data key. */
    sealNew(tenantId: string, id: string, type: string, config: JsonObject, secret: string) {
      const { dataKey, wrapped } = keyring.createDataKey(rowOf(tenantId, id));
      return { data_key: wrapped, ...sealWith(dataKey, type, config, secret) };
    },
    /** The row's own data key, to seal changed values under (a rewrap meanwhile keeps it the same). */
    dataKeyOf(row: Pick<StoredChannel, "tenant_id" | "id" | "data_key">): DataKey {
      if (!row.data_key) throw new Error(`channel ${row.id} is not sealed yet`);
      return keyring.openDataKey(row.data_key, rowOf(row.tenant_id, row.id));
    },
    /** Config and secret in clear. */
    open<T extends StoredChannel>(row: T): Omit<T, "secret"> & { secret: string } {
      if (!row.data_key || !row.secret_sealed) return { ...row, secret: row.secret ?? "" };
      const key = this.dataKeyOf(row);
      return {
        ...row,
        config: openConfig(row.type, row.config, key),
        secret: key.open("secret", row.secret_sealed).toString("utf8"),
      };
    },
    sealConfig: (key: DataKey, type: string, config: JsonObject) => sealConfig(type, config, key),
  };
}

export type ChannelSealer = ReturnType<typeof createChannelSealer>;

/**
 * Seals every row still in clear (written before sealing existed), each in
 * one UPDATE that only applies while the row is still in clear: idempotent,
 * and safe when several processes start at once.
 */
export async function sealPlaintextChannels(pool: Pool, sealer: ChannelSealer): Promise<number> {
  const { rows } = await pool.query<StoredChannel>(
    `SELECT id, tenant_id, type, config, secret, ${SEALED_COLUMNS} FROM channels WHERE data_key IS NULL`,
  );
  let sealed = 0;
  for (const row of rows) {
    const columns = sealer.sealNew(row.tenant_id, row.id, row.type, row.config, row.secret ?? "");
    const { rowCount } = await pool.query(
      `UPDATE channels SET data_key = $2, secret_sealed = $3, config = $4, secret = NULL
       WHERE id = $1 AND data_key IS NULL`,
      [row.id, columns.data_key, columns.secret_sealed, columns.config],
    );
    sealed += rowCount ?? 0;
  }
  return sealed;
}

/** Refuses to go on when sealed channels name key-encryption keys this keyring lacks. */
export async function checkChannelKeys(pool: Pool, keyring: Keyring): Promise<void> {
  const { rows } = await pool.query<{ data_key: Buffer }>("SELECT data_key FROM channels WHERE data_key IS NOT NULL");
  const missing = countMissing(
    keyring,
    rows.map((row) => keyring.kidOf(row.data_key)),
  );
  if (missing.size > 0) throw new MissingKeysError("channels", missing);
}

/**
 * Re-wraps every channel's data key under the active key, in one
 * transaction: one it cannot open fails the whole call, nothing written.
 */
export async function rewrapChannels(pool: Pool, keyring: Keyring) {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    const { rows } = await client.query<{ id: string; tenant_id: string; data_key: Buffer }>(
      "SELECT id, tenant_id, data_key FROM channels WHERE data_key IS NOT NULL FOR UPDATE",
    );
    const stale = rows.filter((row) => keyring.kidOf(row.data_key) !== keyring.activeKid);
    const missing = countMissing(
      keyring,
      stale.map((row) => keyring.kidOf(row.data_key)),
    );
    if (missing.size > 0) throw new MissingKeysError("channels", missing);
    const rewrapped = stale.map((row) => keyring.rewrap(row.data_key, rowOf(row.tenant_id, row.id)));
    if (stale.length > 0) {
      await client.query(
        "UPDATE channels c SET data_key = n.data_key FROM unnest($1::uuid[], $2::bytea[]) AS n (id, data_key) WHERE c.id = n.id",
        [stale.map((row) => row.id), rewrapped],
      );
    }
    await client.query("COMMIT");
    return { rewrapped: stale.length, alreadyActive: rows.length - stale.length };
  } catch (error) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}
