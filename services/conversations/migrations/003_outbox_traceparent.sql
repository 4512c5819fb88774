-- The W3C trace context of the request that wrote the row, carried on as a
-- Kafka header so consumers' spans join the writer's trace.
ALTER TABLE outbox ADD COLUMN traceparent text;
