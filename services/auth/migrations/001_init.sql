-- Auth service: OAuth clients, refresh tokens, signing keys, audit log.
-- tenant_id columns name tenants owned by the conversations service; they
-- are checked through its DirectoryService, not by foreign keys across services.

CREATE TABLE oauth_clients (
  client_id   text PRIMARY KEY,
  tenant_id   uuid NOT NULL,
  name        text NOT NULL,
  scopes      text[] NOT NULL,
  -- SHA-256 of the secret (32 random bytes: no slow hash needed).
  secret_hash bytea NOT NULL,
  disabled    boolean NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX oauth_clients_listing ON oauth_clients (tenant_id, created_at DESC, client_id DESC);

CREATE TABLE refresh_tokens (
  id          uuid PRIMARY KEY,
  token_hash  bytea NOT NULL UNIQUE,
  client_id   text NOT NULL REFERENCES oauth_clients (client_id),
  tenant_id   uuid NOT NULL,
  -- Every token minted by refreshing one login shares its family; reuse of a
  -- rotated token revokes the whole family.
  family_id   uuid NOT NULL,
  scope       text NOT NULL,
  issued_at   timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL,
  revoked_at  timestamptz,
  replaced_by uuid
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_client ON refresh_tokens (client_id) WHERE revoked_at IS NULL;
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);

CREATE TABLE signing_keys (
  kid             text PRIMARY KEY,
  alg             text NOT NULL,
  public_jwk      jsonb NOT NULL,
  -- AES-256-GCM of the private JWK under the key-encryption key (iv || tag || data).
  private_jwk_enc bytea NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  -- Signs until a newer key exists; verifies until verify_until.
  verify_until    timestamptz
);
CREATE INDEX signing_keys_newest ON signing_keys (created_at DESC);

CREATE TABLE audit_events (
  id         bigserial PRIMARY KEY,
  at         timestamptz NOT NULL DEFAULT now(),
  tenant_id  uuid,
  kind       text NOT NULL,
  source_ip  text NOT NULL,
  reason     text NOT NULL
);
CREATE INDEX audit_events_time ON audit_events (at DESC);
CREATE INDEX audit_events_tenant ON audit_events (tenant_id, at DESC) WHERE tenant_id IS NOT NULL;
