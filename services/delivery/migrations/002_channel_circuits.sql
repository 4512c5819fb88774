-- One circuit breaker per channel (design.md §7), shared by every delivery
-- worker of a deployment. No row: closed with no failure.
CREATE TABLE channel_circuits (
  channel_id           uuid PRIMARY KEY,
  tenant_id            uuid NOT NULL,
  -- Transient failed tries in a row; a delivered try resets it.
  consecutive_failures integer NOT NULL DEFAULT 0,
  -- 'open' until opened_until, half-open after it (one probe may go).
  state                text NOT NULL DEFAULT 'closed' CHECK (state IN ('closed', 'open')),
  opened_until         timestamptz,
  -- The cool-down last applied; doubles with each failed probe.
  cooldown_ms          integer NOT NULL DEFAULT 0,
  -- The half-open probe in flight, held until then (a crashed worker's probe expires).
  probe_delivery_id    uuid,
  probe_until          timestamptz,
  updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX channel_circuits_open ON channel_circuits (opened_until) WHERE state = 'open';
CREATE INDEX channel_circuits_tenant ON channel_circuits (tenant_id);
-- An opening circuit moves its channel's pending deliveries to the end of the cool-down.
CREATE INDEX deliveries_channel_pending ON deliveries (channel_id) WHERE status = 'pending';
