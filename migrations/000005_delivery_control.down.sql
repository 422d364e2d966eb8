DROP INDEX IF EXISTS outbox.river_job_outboxd_delivery_subscription;
DROP INDEX IF EXISTS outbox.river_job_outboxd_ordered_line;

CREATE OR REPLACE FUNCTION outbox.events_validate() RETURNS trigger
    LANGUAGE plpgsql
AS $$
DECLARE
    limit_bytes integer;
    size_bytes integer;
BEGIN
    IF NEW.type IS NULL OR NOT outbox.event_type_valid(NEW.type) THEN
        RAISE EXCEPTION 'invalid event type %', coalesce(quote_literal(NEW.type), 'NULL')
            USING ERRCODE = 'check_violation', COLUMN = 'type', CONSTRAINT = 'events_type_format',
                  HINT = 'An event type is two or more dot-separated words of a-z, 0-9 and _, at most 200 characters, like agent.step.completed.';
    END IF;
    IF NEW.payload IS NULL OR jsonb_typeof(NEW.payload) <> 'object' THEN
        RAISE EXCEPTION 'event payload must be a JSON object, not %', coalesce(jsonb_typeof(NEW.payload), 'NULL')
            USING ERRCODE = 'check_violation', COLUMN = 'payload', CONSTRAINT = 'events_payload_object',
                  HINT = 'Wrap the value in an object, like {"value": ...}.';
    END IF;
    SELECT s.max_payload_bytes INTO limit_bytes FROM outbox.settings AS s;
    size_bytes := octet_length(NEW.payload::text);
    IF size_bytes > limit_bytes THEN
        RAISE EXCEPTION 'event payload is % bytes, over the limit of % bytes', size_bytes, limit_bytes
            USING ERRCODE = 'check_violation', COLUMN = 'payload', CONSTRAINT = 'events_payload_size',
                  HINT = 'Send ids and small facts, not documents; the limit is outbox.settings.max_payload_bytes.';
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION outbox.event_type_matches(patterns text[], event_type text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT EXISTS (
        SELECT 1 FROM unnest(patterns) AS p
        WHERE p = '*'
            OR p = event_type
            OR (right(p, 2) = '.*' AND starts_with(event_type, left(p, -1)))
    )
$$;

DROP FUNCTION IF EXISTS outbox.delivery_lease_take(text, bigint, interval);
DROP TABLE IF EXISTS outbox.delivery_leases;

ALTER TABLE outbox.subscriptions
    DROP COLUMN IF EXISTS circuit_open_until,
    DROP COLUMN IF EXISTS failing_since,
    DROP COLUMN IF EXISTS failure_streak,
    DROP COLUMN IF EXISTS on_dead,
    DROP COLUMN IF EXISTS ordering,
    DROP COLUMN IF EXISTS max_in_flight;
