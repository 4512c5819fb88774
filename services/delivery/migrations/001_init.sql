-- The delivery service's tables: one delivery per (activity, target channel),
-- the events its log consumers already processed, and the events they could not.

CREATE TABLE deliveries (
  id                  uuid PRIMARY KEY,
  tenant_id           uuid NOT NULL,
  activity_id         uuid NOT NULL,
  conversation_id     uuid NOT NULL,
  seq                 bigint NOT NULL,
  channel_id          uuid NOT NULL,
  -- The provider's thread (e.g. a WhatsApp wa_id) and the activity as sent.
  external_id         text,
  activity            jsonb NOT NULL,
  status              text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts            integer NOT NULL DEFAULT 0,
  last_error          text,
  next_attempt_at     timestamptz,
  -- Held by a worker until then; a crashed worker's claim simply expires.
  lease_until         timestamptz,
  delivered_at        timestamptz,
  provider_message_id text,
  provider_status     text,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  UNIQUE (activity_id, channel_id)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
-- Head of each (conversation, channel) line: deliveries go out in seq order.
CREATE INDEX deliveries_line ON deliveries (conversation_id, channel_id, seq) WHERE status = 'pending';
CREATE INDEX deliveries_listing ON deliveries (tenant_id, created_at DESC, id DESC);
CREATE INDEX deliveries_by_status ON deliveries (tenant_id, status, created_at DESC, id DESC);
CREATE INDEX deliveries_provider ON deliveries (channel_id, provider_message_id)
  WHERE provider_message_id IS NOT NULL;
CREATE INDEX deliveries_prune ON deliveries (delivered_at) WHERE status = 'delivered';

-- Consumers are idempotent on the event id (the log delivers at least once).
CREATE TABLE processed_events (
  consumer     text NOT NULL,
  event_id     uuid NOT NULL,
  processed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, event_id)
);
CREATE INDEX processed_events_age ON processed_events (processed_at);

CREATE TABLE processing_dead_letters (
  id          uuid PRIMARY KEY,
  consumer    text NOT NULL,
  topic       text NOT NULL,
  event_id    uuid NOT NULL,
  key         text NOT NULL,
  tenant_id   text NOT NULL,
  payload     jsonb NOT NULL,
  error       text NOT NULL,
  attempts    integer NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  replayed_at timestamptz
);
CREATE INDEX processing_dead_letters_listing ON processing_dead_letters (created_at DESC, id DESC);
