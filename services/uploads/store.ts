import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { UploadCompletedSchema } from "../../gen/converger/v1/envelopes_pb.js";
import { inTransaction, type Pool } from "../common/db/pool.js";
import { envelopePayload, UPLOADS_TOPIC } from "../common/events/envelopes.js";

type UploadStatusName = "UPLOADING" | "MERGING" | "COMPLETED" | "FAILED";

export interface UploadRow {
  id: string;
  tenant_id: string;
  uploader: string;
  conversation_id: string | null;
  filename: string;
  size: string;
  content_type: string;
  declared_sha256: string | null;
  chunk_size: string;
  total_chunks: number;
  received: boolean[];
  status: UploadStatusName;
  error: string | null;
  file_id: string | null;
  /** Set for streamed (tus) uploads: bytes in so far. */
  tus_offset: string | null;
  created_at: Date;
  updated_at: Date;
}

export interface FileRow {
  id: string;
  tenant_id: string;
  upload_id: string;
  filename: string;
  size: string;
  content_type: string;
  sha256: string;
  storage_key: string;
  created_at: Date;
  /** The conversation it was uploaded into (reads only). */
  conversation_id?: string | null;
}

export interface NewUpload {
  tenantId: string;
  uploader: string;
  conversationId: string | null;
  filename: string;
  size: bigint;
  contentType: string;
  declaredSha256: string | null;
  chunkSize: bigint;
  totalChunks: number;
  streamed: boolean;
}

export { UPLOADS_TOPIC };

export function createUploadStore(pool: Pool) {
  return {
    /** Records a new upload unless it would take the tenant past its quota (counted under a tenant lock). */
    async create(u: NewUpload, quotaBytes: bigint): Promise<UploadRow | "over_quota"> {
      return inTransaction(pool, async (client) => {
        await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`uploads-quota:${u.tenantId}`]);
        const used = await client.query<{ bytes: string }>(
          `SELECT (SELECT coalesce(sum(size), 0) FROM (SELECT DISTINCT ON (storage_key) size FROM files
                    WHERE tenant_id = $1) f)
                + (SELECT coalesce(sum(size), 0) FROM file_uploads
                    WHERE tenant_id = $1 AND status IN ('UPLOADING', 'MERGING')) AS bytes`,
          [u.tenantId],
        );
        if (BigInt(used.rows[0]?.bytes ?? "0") + u.size > quotaBytes) return "over_quota";
        const { rows } = await client.query<UploadRow>(
          `INSERT INTO file_uploads (id, tenant_id, uploader, conversation_id, filename, size, content_type,
                                     declared_sha256, chunk_size, total_chunks, received, tus_offset)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, array_fill(false, ARRAY[$10::int]),
                   CASE WHEN $11 THEN 0 END)
           RETURNING *`,
          [
            randomUUID(),
            u.tenantId,
            u.uploader,
            u.conversationId,
            u.filename,
            u.size.toString(),
            u.contentType,
            u.declaredSha256,
            u.chunkSize.toString(),
            u.totalChunks,
            u.streamed,
          ],
        );
        return rows[0] as UploadRow;
      });
    },

    async get(tenantId: string, id: string): Promise<UploadRow | undefined> {
      const { rows } = await pool.query<UploadRow>("SELECT * FROM file_uploads WHERE id = $1 AND tenant_id = $2", [
        id,
        tenantId,
      ]);
      return rows[0];
    },

    async getById(id: string): Promise<UploadRow | undefined> {
      const { rows } = await pool.query<UploadRow>("SELECT * FROM file_uploads WHERE id = $1", [id]);
      return rows[0];
    },

    /**
     * Moves a streamed upload's offset from `from` to `to` (compare-and-set, so
     * two PATCHes at one offset cannot both count); at the end its one part is
     * marked received.
     */
    async advance(id: string, from: bigint, to: bigint): Promise<UploadRow | undefined> {
      const { rows } = await pool.query<UploadRow>(
        `UPDATE file_uploads SET tus_offset = $3, updated_at = now(),
           received = CASE WHEN $3 = size THEN ARRAY[true] ELSE received END
         WHERE id = $1 AND tus_offset = $2 AND status = 'UPLOADING' RETURNING *`,
        [id, from.toString(), to.toString()],
      );
      return rows[0];
    },

    /** Marks chunk n received while the upload still takes chunks; undefined when it no longer does. */
    async markChunk(id: string, n: number): Promise<UploadRow | undefined> {
      const { rows } = await pool.query<UploadRow>(
        `UPDATE file_uploads SET received[$2] = true, updated_at = now()
         WHERE id = $1 AND status = 'UPLOADING' RETURNING *`,
        [id, n],
      );
      return rows[0];
    },

    /**
     * Moves a complete upload to MERGING and queues its merge in the same
     * transaction (outbox). Returns the chunks still missing instead, or the
     * row unchanged when it is past UPLOADING already (a repeated complete).
     */
    async complete(tenantId: string, id: string): Promise<{ row: UploadRow; missing: number[] } | undefined> {
      return inTransaction(pool, async (client) => {
        const { rows } = await client.query<UploadRow>(
          "SELECT * FROM file_uploads WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
          [id, tenantId],
        );
        const row = rows[0];
        if (!row) return undefined;
        if (row.status !== "UPLOADING") return { row, missing: [] };
        const missing = row.received.flatMap((got, i) => (got ? [] : [i + 1]));
        if (missing.length > 0) return { row, missing };
        const updated = await client.query<UploadRow>(
          "UPDATE file_uploads SET status = 'MERGING', updated_at = now() WHERE id = $1 RETURNING *",
          [id],
        );
        await client.query(
          `INSERT INTO upload_outbox (event_id, topic, key, tenant_id, payload) VALUES ($1, $2, $3, $4, $5)`,
          [randomUUID(), UPLOADS_TOPIC, id, tenantId, envelopePayload(create(UploadCompletedSchema, { uploadId: id }))],
        );
        return { row: updated.rows[0] as UploadRow, missing: [] };
      });
    },

    /**
     * Ends a merge: COMPLETED and the file row (new, or pointing at an
     * identical file's object), only if the upload is still MERGING: a merge
     * that ran twice records one file.
     */
    async finish(
      upload: UploadRow,
      file: { storageKey: string; size: bigint; sha256: string },
    ): Promise<FileRow | undefined> {
      return inTransaction(pool, async (client) => {
        const fileId = randomUUID();
        const moved = await client.query(
          `UPDATE file_uploads SET status = 'COMPLETED', file_id = $2, updated_at = now()
           WHERE id = $1 AND status = 'MERGING'`,
          [upload.id, fileId],
        );
        if (moved.rowCount !== 1) return undefined;
        const { rows } = await client.query<FileRow>(
          `INSERT INTO files (id, tenant_id, upload_id, filename, size, content_type, sha256, storage_key)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *`,
          [
            fileId,
            upload.tenant_id,
            upload.id,
            upload.filename,
            file.size.toString(),
            upload.content_type,
            file.sha256,
            file.storageKey,
          ],
        );
        return rows[0];
      });
    },

    /** Uploads past UPLOADING whose chunks may still be stored (a merge or a chunk that lost a race). */
    async finishedWithChunks(ids: string[]): Promise<string[]> {
      const { rows } = await pool.query<{ id: string }>(
        "SELECT id FROM file_uploads WHERE id = ANY($1::uuid[]) AND status IN ('COMPLETED', 'FAILED')",
        [ids],
      );
      return rows.map((r) => r.id);
    },

    async fail(id: string, error: string): Promise<void> {
      await pool.query(
        `UPDATE file_uploads SET status = 'FAILED', error = $2, updated_at = now()
         WHERE id = $1 AND status IN ('UPLOADING', 'MERGING')`,
        [id, error.slice(0, 500)],
      );
    },

    /** A stored file of the tenant with these bytes, to point a new upload at (deduplication). */
    async identical(tenantId: string, sha256: string): Promise<FileRow | undefined> {
      const { rows } = await pool.query<FileRow>(
        "SELECT * FROM files WHERE tenant_id = $1 AND sha256 = $2 ORDER BY created_at LIMIT 1",
        [tenantId, sha256],
      );
      return rows[0];
    },

    async file(tenantId: string, id: string): Promise<FileRow | undefined> {
      const { rows } = await pool.query<FileRow>(
        `SELECT f.*, u.conversation_id FROM files f JOIN file_uploads u ON u.id = f.upload_id
         WHERE f.id = $1 AND f.tenant_id = $2`,
        [id, tenantId],
      );
      return rows[0];
    },

    async filesOf(tenantId: string, ids: string[], conversationId?: string): Promise<FileRow[]> {
      const { rows } = await pool.query<FileRow>(
        `SELECT f.*, u.conversation_id FROM files f JOIN file_uploads u ON u.id = f.upload_id
         WHERE f.tenant_id = $1 AND f.id = ANY($2::uuid[]) AND ($3::uuid IS NULL OR u.conversation_id = $3::uuid)`,
        [tenantId, ids, conversationId ?? null],
      );
      return rows;
    },

    async storageKeyOf(fileId: string): Promise<string | undefined> {
      const { rows } = await pool.query<{ storage_key: string }>("SELECT storage_key FROM files WHERE id = $1", [
        fileId,
      ]);
      return rows[0]?.storage_key;
    },

    /** Uploads still UPLOADING with no chunk for `hours`: removed by the garbage collector. */
    async abandoned(hours: number): Promise<UploadRow[]> {
      const { rows } = await pool.query<UploadRow>(
        `SELECT * FROM file_uploads WHERE status = 'UPLOADING' AND updated_at < now() - make_interval(hours => $1)
         LIMIT 1000`,
        [hours],
      );
      return rows;
    },

    async remove(id: string): Promise<void> {
      await pool.query("DELETE FROM file_uploads WHERE id = $1 AND status = 'UPLOADING'", [id]);
    },

    async removeUnfinished(id: string): Promise<void> {
      await pool.query("DELETE FROM file_uploads WHERE id = $1 AND status IN ('UPLOADING', 'FAILED')", [id]);
    },

    async exists(id: string): Promise<boolean> {
      const { rowCount } = await pool.query("SELECT 1 FROM file_uploads WHERE id = $1", [id]);
      return (rowCount ?? 0) > 0;
    },
  };
}

export type UploadStore = ReturnType<typeof createUploadStore>;
