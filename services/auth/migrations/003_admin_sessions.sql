-- Operator console sessions (design.md §10): the cookie holds the secret,
-- stored here only as SHA-256. A sign-out ends the session on every node.
CREATE TABLE admin_sessions (
  id          uuid PRIMARY KEY,
  secret_hash bytea NOT NULL UNIQUE,
  source_ip   text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL,
  ended_at    timestamptz
);
CREATE INDEX admin_sessions_expiry ON admin_sessions (expires_at);

-- The audit log also records what operators did: who, what, on what, the outcome.
ALTER TABLE audit_events
  ADD COLUMN actor text,
  ADD COLUMN session_id uuid,
  ADD COLUMN action text,
  ADD COLUMN target text,
  ADD COLUMN outcome text;
CREATE INDEX audit_events_operator ON audit_events (id DESC) WHERE kind = 'operator_action';
