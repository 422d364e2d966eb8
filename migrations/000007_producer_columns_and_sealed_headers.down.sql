-- Undoes 000007. Custom header values must be back in the plaintext headers
-- column first; SQL cannot decrypt sealed ones, so `outboxd migrate down` with
-- OUTBOXD_ENCRYPTION_KEY set unseals them before this runs, and this refuses to
-- run while any remain sealed rather than lose them.
DO $$
DECLARE
    sealed bigint;
BEGIN
    SELECT count(*) INTO sealed FROM outbox.subscriptions WHERE headers_ciphertext IS NOT NULL;
    IF sealed > 0 THEN
        RAISE EXCEPTION '% subscriptions have encrypted header values, which SQL cannot decrypt', sealed
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Run outboxd migrate down with OUTBOXD_ENCRYPTION_KEY set: it decrypts them first.';
    END IF;
END
$$;
ALTER TABLE outbox.subscriptions
    DROP CONSTRAINT subscriptions_header_values,
    DROP CONSTRAINT subscriptions_headers_sealed,
    DROP COLUMN header_names,
    DROP COLUMN headers_key_id,
    DROP COLUMN headers_ciphertext;

-- Events go back to an identity id and a default event_id, both continuing
-- where they were, and to events_validate as migration 5 left it.

DROP TRIGGER events_immutable ON outbox.events;
DROP FUNCTION outbox.events_immutable();

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
    IF starts_with(NEW.type, 'outboxd.') AND coalesce(current_setting('outboxd.operational', true), '') <> 'on' THEN
        RAISE EXCEPTION 'event type % is reserved: outboxd.* events are published by outboxd itself', quote_literal(NEW.type)
            USING ERRCODE = 'check_violation', COLUMN = 'type', CONSTRAINT = 'events_type_reserved',
                  HINT = 'Choose a type outside the outboxd. namespace.';
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

ALTER TABLE outbox.events ALTER COLUMN event_id SET DEFAULT outbox.new_id('evt_');

ALTER SEQUENCE outbox.events_id_seq OWNED BY NONE;
ALTER SEQUENCE outbox.events_id_seq RENAME TO events_id_seq_7;
ALTER TABLE outbox.events ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY;
SELECT setval(pg_get_serial_sequence('outbox.events', 'id'), s.last_value, s.is_called) FROM outbox.events_id_seq_7 AS s;
DROP SEQUENCE outbox.events_id_seq_7;
