-- A tenant's own limit of state-changing calls per minute; NULL = the deployment default.
ALTER TABLE tenants ADD COLUMN rate_limit_per_minute integer CHECK (rate_limit_per_minute > 0);
