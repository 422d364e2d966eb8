-- Producers set only what an event says; outboxd assigns the rest. A producer
-- that set dispatched_at or fanned_out_at made an event that was never
-- delivered, a producer-chosen event_id became the webhook-id receivers
-- de-duplicate on, and an id chosen with OVERRIDING SYSTEM VALUE later collided
-- with the position Postgres gave another producer's event. events_validate now
-- refuses all four and assigns id and event_id itself, which it can only tell
-- from a producer's value when the columns have no default.

-- id: an identity column becomes a plain one that events_validate fills from a
-- sequence of the same name, continuing where the identity left off.
CREATE SEQUENCE outbox.events_id_seq_7 AS bigint;
SELECT setval('outbox.events_id_seq_7', s.last_value, s.is_called) FROM outbox.events_id_seq AS s;
ALTER TABLE outbox.events ALTER COLUMN id DROP IDENTITY;
ALTER SEQUENCE outbox.events_id_seq_7 RENAME TO events_id_seq;
ALTER SEQUENCE outbox.events_id_seq OWNED BY outbox.events.id;
-- An identity column needed no privilege on its sequence; the trigger runs as the
-- producer, so every role that may insert events may take the next position.
GRANT USAGE ON SEQUENCE outbox.events_id_seq TO PUBLIC;

ALTER TABLE outbox.events ALTER COLUMN event_id DROP DEFAULT;

CREATE OR REPLACE FUNCTION outbox.events_validate() RETURNS trigger
    LANGUAGE plpgsql
AS $$
DECLARE
    limit_bytes integer;
    size_bytes integer;
BEGIN
    IF NEW.id IS NOT NULL THEN
        RAISE EXCEPTION 'cannot set id: outboxd assigns each event its position, the order the relay claims events in'
            USING ERRCODE = 'generated_always', COLUMN = 'id', TABLE = TG_TABLE_NAME, SCHEMA = TG_TABLE_SCHEMA,
                  HINT = 'Leave id out of the INSERT.';
    END IF;
    IF NEW.event_id IS NOT NULL THEN
        RAISE EXCEPTION 'cannot set event_id: outboxd generates it, and receivers de-duplicate on it as the webhook-id'
            USING ERRCODE = 'generated_always', COLUMN = 'event_id', TABLE = TG_TABLE_NAME, SCHEMA = TG_TABLE_SCHEMA,
                  HINT = 'Leave event_id out of the INSERT and read it back with RETURNING event_id; to publish an event once however often you try, give it an idempotency_key.';
    END IF;
    IF NEW.dispatched_at IS NOT NULL THEN
        RAISE EXCEPTION 'cannot set dispatched_at: outboxd sets it when the relay claims the event, and an event inserted with it would never be delivered'
            USING ERRCODE = 'generated_always', COLUMN = 'dispatched_at', TABLE = TG_TABLE_NAME, SCHEMA = TG_TABLE_SCHEMA,
                  HINT = 'Leave dispatched_at out of the INSERT.';
    END IF;
    IF NEW.fanned_out_at IS NOT NULL THEN
        RAISE EXCEPTION 'cannot set fanned_out_at: outboxd sets it when it creates the event''s deliveries'
            USING ERRCODE = 'generated_always', COLUMN = 'fanned_out_at', TABLE = TG_TABLE_NAME, SCHEMA = TG_TABLE_SCHEMA,
                  HINT = 'Leave fanned_out_at out of the INSERT.';
    END IF;
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
    NEW.id := nextval('outbox.events_id_seq');
    NEW.event_id := outbox.new_id('evt_');
    RETURN NEW;
END
$$;

-- An event is immutable once inserted: an UPDATE would skip every check above
-- (and could forge a reserved outboxd.* type), and would change what later
-- attempts of a delivery send under the same webhook-id. The trigger fires only
-- for UPDATEs that name these columns, so the relay's and fan-out's UPDATEs of
-- dispatched_at and fanned_out_at never run it. Those two columns, and
-- created_at, are not guarded: outboxd updates the first two itself.
CREATE FUNCTION outbox.events_immutable() RETURNS trigger
    LANGUAGE plpgsql
AS $$
DECLARE
    changed text;
BEGIN
    changed := CASE
        WHEN NEW.id IS DISTINCT FROM OLD.id THEN 'id'
        WHEN NEW.event_id IS DISTINCT FROM OLD.event_id THEN 'event_id'
        WHEN NEW.type IS DISTINCT FROM OLD.type THEN 'type'
        WHEN NEW.organization_id IS DISTINCT FROM OLD.organization_id THEN 'organization_id'
        WHEN NEW.agent_id IS DISTINCT FROM OLD.agent_id THEN 'agent_id'
        WHEN NEW.payload IS DISTINCT FROM OLD.payload THEN 'payload'
        WHEN NEW.idempotency_key IS DISTINCT FROM OLD.idempotency_key THEN 'idempotency_key'
    END;
    IF changed IS NOT NULL THEN
        RAISE EXCEPTION 'cannot change % of published event %: events are immutable once inserted', changed, OLD.event_id
            USING ERRCODE = 'feature_not_supported', COLUMN = changed, TABLE = TG_TABLE_NAME, SCHEMA = TG_TABLE_SCHEMA,
                  HINT = 'Publish a new event instead: receivers may already hold this one under its webhook-id.';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER events_immutable
    BEFORE UPDATE OF id, event_id, type, organization_id, agent_id, payload, idempotency_key ON outbox.events
    FOR EACH ROW EXECUTE FUNCTION outbox.events_immutable();

-- Custom request headers hold receivers' credentials (Authorization: Bearer …),
-- so their values are sealed like signing secrets: AES-256-GCM under the
-- operator's key, in one ciphertext per subscription bound to it (outboxd seals
-- with the associated data "<subscription id>\0headers", which no signing
-- secret uses). Their names stay readable, for reads without the key.
ALTER TABLE outbox.subscriptions
    ADD COLUMN header_names text[] NOT NULL DEFAULT '{}',
    ADD COLUMN headers_key_id text,
    ADD COLUMN headers_ciphertext bytea,
    ADD CONSTRAINT subscriptions_headers_sealed CHECK ((headers_key_id IS NULL) = (headers_ciphertext IS NULL));

-- SQL cannot seal (the key lives in the daemon's environment), so the values
-- written before this migration stay in the headers column, still delivered,
-- until outboxd seals them and leaves '{}' there: `outboxd migrate up` and
-- `outboxd keys rotate` with OUTBOXD_ENCRYPTION_KEY set, and every daemon when
-- it starts. outboxd writes plaintext there no more; a daemon of an older
-- version, still running during an upgrade, may, and since sealing always
-- empties the column, values found there are the newest.
UPDATE outbox.subscriptions
SET header_names = ARRAY(SELECT k FROM jsonb_object_keys(headers) AS k ORDER BY k COLLATE "C")
WHERE headers <> '{}';
ALTER TABLE outbox.subscriptions
    ADD CONSTRAINT subscriptions_header_values CHECK (
        cardinality(header_names) = 0 OR headers_ciphertext IS NOT NULL OR headers <> '{}');
