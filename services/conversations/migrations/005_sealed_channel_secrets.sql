-- Channel secrets and secret config values are sealed (services/common/secrets):
-- data_key is the row's own data key, wrapped by the key-encryption key it
-- names; secret_sealed is the channel secret under it, and config's secret
-- fields hold their sealed values. Rows written before this keep data_key
-- NULL and their values in clear until the service seals them at start
-- (SQL cannot: the keys are not in the database).
ALTER TABLE channels ADD COLUMN data_key bytea, ADD COLUMN secret_sealed bytea;
ALTER TABLE channels ALTER COLUMN secret DROP NOT NULL;
-- A row is wholly in clear or wholly sealed, never half of each.
ALTER TABLE channels ADD CONSTRAINT channels_sealed_or_clear CHECK (
  (data_key IS NULL AND secret_sealed IS NULL AND secret IS NOT NULL)
  OR (data_key IS NOT NULL AND secret_sealed IS NOT NULL AND secret IS NULL)
);
