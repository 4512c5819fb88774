-- Each delivery's timeline (ListDeliveryAttempts): its tries, the provider
-- status callbacks applied to it and the retries asked for. Written in the
-- statement that records what it tells, so a timeline never disagrees with
-- its delivery; pruned with it (ON DELETE CASCADE).
CREATE TABLE delivery_attempts (
  -- Not serial: each service's sequences are a fixed set (test/legacy-upgrade.test.ts).
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  delivery_id     uuid NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
  tenant_id       uuid NOT NULL,
  kind            text NOT NULL CHECK (kind IN ('try', 'status', 'retry_requested')),
  -- The try's number since queued or last retried; for other kinds, the tries made by then.
  attempt         integer NOT NULL,
  started_at      timestamptz NOT NULL,
  finished_at     timestamptz NOT NULL,
  -- Tries only.
  outcome         text CHECK (outcome IN ('delivered', 'retry', 'failed')),
  error           text,
  http_status     integer,
  provider_status text,
  -- The timeline's order, by the database's clock (started_at comes from the worker's).
  recorded_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- The timeline in order, and the cascade from a pruned delivery.
CREATE INDEX delivery_attempts_timeline ON delivery_attempts (delivery_id, recorded_at, id);

-- Delivery counts per tenant and channel (GetDeliveryStats) from an index-only
-- scan instead of reading every row. Built in the migration's transaction:
-- on a large table, delivery writes wait for it once, at the upgrade.
CREATE INDEX deliveries_counts ON deliveries (tenant_id, channel_id, status);

-- The dead letters still to replay, counted by GetDeliveryStats.
CREATE INDEX processing_dead_letters_open ON processing_dead_letters (created_at) WHERE replayed_at IS NULL;
