-- Conversation core: tenants, channels, conversations, activities, the tenant
-- event feed, idempotency keys and the transactional outbox.

CREATE TABLE tenants (
  id           uuid PRIMARY KEY,
  name         text NOT NULL,
  status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
  -- SHA-256 of the API key; the key itself is shown once and never stored.
  api_key_hash bytea NOT NULL UNIQUE,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tenants_listing ON tenants (created_at DESC, id DESC);

CREATE TABLE channels (
  id         uuid PRIMARY KEY,
  tenant_id  uuid NOT NULL REFERENCES tenants (id),
  name       text NOT NULL,
  type       text NOT NULL,
  status     text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
  config     jsonb NOT NULL DEFAULT '{}',
  -- Kept in clear: inbound signatures are HMACs keyed with it. Looked up by
  -- its SHA-256 (Direct Line token minting) so lookups leak no timing.
  secret      text NOT NULL,
  secret_hash bytea NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, id)
);
CREATE INDEX channels_listing ON channels (tenant_id, created_at DESC, id DESC);

CREATE TABLE conversations (
  id          uuid PRIMARY KEY,
  tenant_id   uuid NOT NULL REFERENCES tenants (id),
  channel_id  uuid NOT NULL,
  external_id text,
  status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'closed')),
  members     text[] NOT NULL DEFAULT '{}',
  metadata    jsonb NOT NULL DEFAULT '{}',
  -- Seq of the newest activity; bumped under the row lock that orders writers.
  last_seq    bigint NOT NULL DEFAULT 0,
  -- Listing order: newest activity first (creation time until the first one).
  activity_at timestamptz NOT NULL DEFAULT now(),
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, id),
  -- The channel must belong to the same tenant.
  FOREIGN KEY (tenant_id, channel_id) REFERENCES channels (tenant_id, id)
);
CREATE INDEX conversations_listing ON conversations (tenant_id, activity_at DESC, id DESC);
CREATE INDEX conversations_by_channel ON conversations (channel_id);
CREATE UNIQUE INDEX conversations_external ON conversations (channel_id, external_id)
  WHERE external_id IS NOT NULL;
CREATE INDEX conversations_members ON conversations USING gin (members);

CREATE TABLE activities (
  conversation_id   uuid NOT NULL,
  seq               bigint NOT NULL CHECK (seq > 0),
  id                uuid NOT NULL UNIQUE,
  tenant_id         uuid NOT NULL,
  type              text NOT NULL CHECK (type IN ('message', 'event')),
  text              text NOT NULL DEFAULT '',
  attachments       jsonb NOT NULL DEFAULT '[]',
  from_id           text NOT NULL,
  from_name         text NOT NULL DEFAULT '',
  metadata          jsonb NOT NULL DEFAULT '{}',
  origin_channel_id uuid,
  created_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (conversation_id, seq),
  FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id)
);

CREATE TABLE idempotency_keys (
  tenant_id       uuid NOT NULL,
  conversation_id uuid NOT NULL,
  key             text NOT NULL,
  -- SHA-256 of the canonical request, to tell a replay from a conflicting reuse.
  request_hash    bytea NOT NULL,
  activity_id     uuid NOT NULL,
  expires_at      timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, conversation_id, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

CREATE TABLE tenant_events (
  id         uuid PRIMARY KEY,
  tenant_id  uuid NOT NULL REFERENCES tenants (id),
  message    text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tenant_events_listing ON tenant_events (tenant_id, created_at DESC, id DESC);

-- Written in the same transaction as the change it announces; relayed at
-- least once, in id order, to in-process consumers or Kafka.
CREATE TABLE outbox (
  id           bigserial PRIMARY KEY,
  -- Consumers dedupe on it; random UUIDs need no unique index to stay unique.
  event_id     uuid NOT NULL,
  topic        text NOT NULL,
  -- Partition key: per-key order is preserved downstream (conversation id).
  key          text NOT NULL,
  tenant_id    uuid NOT NULL,
  payload      jsonb NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  published_at timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;

CREATE TABLE read_positions (
  tenant_id       uuid NOT NULL,
  conversation_id uuid NOT NULL,
  user_id         text NOT NULL,
  read_up_to      bigint NOT NULL,
  updated_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (conversation_id, user_id),
  FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id)
);
