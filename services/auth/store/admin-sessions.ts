import { randomBytes, randomUUID } from "node:crypto";
import { hashSecret } from "../../common/access/access.js";
import type { Pool } from "../../common/db/pool.js";

const ADMIN_SESSION_PREFIX = "cva_";
/** A console session lasts a working day; signing in again starts a new one. */
const ADMIN_SESSION_HOURS = 8;

export interface AdminSessionRow {
  id: string;
  expiresAt: Date;
}

/** Console sessions, by the SHA-256 of their cookie secret. */
export function createAdminSessionStore(pool: Pool) {
  return {
    async create(sourceIp: string): Promise<AdminSessionRow & { secret: string }> {
      const secret = ADMIN_SESSION_PREFIX + randomBytes(32).toString("base64url");
      const { rows } = await pool.query<{ id: string; expires_at: Date }>(
        `INSERT INTO admin_sessions (id, secret_hash, source_ip, expires_at)
         VALUES ($1, $2, $3, now() + make_interval(hours => $4)) RETURNING id, expires_at`,
        [randomUUID(), hashSecret(secret), sourceIp.slice(0, 100), ADMIN_SESSION_HOURS],
      );
      const row = rows[0] as { id: string; expires_at: Date };
      return { id: row.id, expiresAt: row.expires_at, secret };
    },
    /** The live session of `secret`, or undefined when unknown, ended or expired. */
    async find(secret: string): Promise<AdminSessionRow | undefined> {
      const { rows } = await pool.query<{ id: string; expires_at: Date }>(
        `SELECT id, expires_at FROM admin_sessions
         WHERE secret_hash = $1 AND ended_at IS NULL AND expires_at > now()`,
        [hashSecret(secret)],
      );
      const row = rows[0];
      return row && { id: row.id, expiresAt: row.expires_at };
    },
    async end(secret: string): Promise<string | undefined> {
      const { rows } = await pool.query<{ id: string }>(
        "UPDATE admin_sessions SET ended_at = now() WHERE secret_hash = $1 AND ended_at IS NULL RETURNING id",
        [hashSecret(secret)],
      );
      return rows[0]?.id;
    },
    /** Sessions past their expiry for a day are of no use, even to the audit log (which keeps their id). */
    async prune(): Promise<number> {
      const res = await pool.query("DELETE FROM admin_sessions WHERE expires_at < now() - interval '1 day'");
      return res.rowCount ?? 0;
    },
  };
}

export type AdminSessionStore = ReturnType<typeof createAdminSessionStore>;
