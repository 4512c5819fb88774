-- Several relays claim outbox batches with SKIP LOCKED; a row is published only
-- when no earlier unpublished row of its key is held elsewhere (per-key order).
CREATE INDEX outbox_unpublished_by_key ON outbox (key, id) WHERE published_at IS NULL;
