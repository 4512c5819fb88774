-- Uploads sent as one stream of bytes (tus): a single part that grows by
-- appends; tus_offset is how much of it is in.
ALTER TABLE file_uploads ADD COLUMN tus_offset bigint;
