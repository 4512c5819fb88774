-- Signing keys move to the keyring (services/common/secrets): data_key is the
-- key's own data key, wrapped by the key-encryption key it names, and
-- private_jwk_enc is sealed under it with the kid as additional data.
-- NULL: a key sealed before, directly under the key-encryption key "default".
ALTER TABLE signing_keys ADD COLUMN data_key bytea;
