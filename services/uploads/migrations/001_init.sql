-- The uploads service's tables: uploads in progress (chunk bitmap, state
-- machine), the files they produce, and the outbox that triggers merges.

CREATE TABLE file_uploads (
  id               uuid PRIMARY KEY,
  tenant_id        uuid NOT NULL,
  -- Who uploads: "key", "client:<id>" or "user:<id>"; end users also name their conversation.
  uploader         text NOT NULL,
  conversation_id  uuid,
  -- Display name only, sanitized; storage keys are server-generated.
  filename         text NOT NULL,
  size             bigint NOT NULL CHECK (size > 0),
  content_type     text NOT NULL,
  declared_sha256  text,
  chunk_size       bigint NOT NULL,
  total_chunks     integer NOT NULL,
  received         boolean[] NOT NULL,
  status           text NOT NULL DEFAULT 'UPLOADING'
                   CHECK (status IN ('UPLOADING', 'MERGING', 'COMPLETED', 'FAILED')),
  error            text,
  file_id          uuid,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX file_uploads_abandoned ON file_uploads (updated_at) WHERE status = 'UPLOADING';
CREATE INDEX file_uploads_tenant ON file_uploads (tenant_id);

CREATE TABLE files (
  id           uuid PRIMARY KEY,
  tenant_id    uuid NOT NULL,
  upload_id    uuid NOT NULL,
  filename     text NOT NULL,
  size         bigint NOT NULL,
  content_type text NOT NULL,
  sha256       text NOT NULL,
  -- Shared by identical files of one tenant (deduplication).
  storage_key  text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX files_dedupe ON files (tenant_id, sha256);

-- Merge jobs go through the event backbone like every other event.
CREATE TABLE upload_outbox (
  id           bigserial PRIMARY KEY,
  event_id     uuid NOT NULL,
  topic        text NOT NULL,
  key          text NOT NULL,
  tenant_id    uuid NOT NULL,
  payload      jsonb NOT NULL,
  traceparent  text,
  created_at   timestamptz NOT NULL DEFAULT now(),
  published_at timestamptz
);
CREATE INDEX upload_outbox_unpublished ON upload_outbox (id) WHERE published_at IS NULL;
CREATE INDEX upload_outbox_unpublished_by_key ON upload_outbox (key, id) WHERE published_at IS NULL;
