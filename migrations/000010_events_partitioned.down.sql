-- Back to migration 7's outbox.events: one unpartitioned table with a stored
-- public id. Every event is copied back with its id; events published since
-- migration 10 get their derived id stored.

DROP FUNCTION outbox.event(text);
DROP FUNCTION outbox.publish(text, jsonb, text, text, text);
DROP FUNCTION outbox.publish_event(text, jsonb, text, text, text);

ALTER TABLE outbox.events RENAME TO events_partitioned;
ALTER INDEX outbox.events_pkey RENAME TO events_partitioned_pkey;
ALTER INDEX outbox.events_undispatched RENAME TO events_partitioned_undispatched;
ALTER SEQUENCE outbox.events_id_seq RENAME TO events_partitioned_id_seq;

CREATE TABLE outbox.events (
    id bigint PRIMARY KEY,
    event_id text NOT NULL CONSTRAINT events_event_id_key UNIQUE,
    type text NOT NULL CONSTRAINT events_type_format CHECK (outbox.event_type_valid(type)),
    organization_id text CONSTRAINT events_organization_id_length CHECK (length(organization_id) BETWEEN 1 AND 255),
    agent_id text CONSTRAINT events_agent_id_length CHECK (length(agent_id) BETWEEN 1 AND 255),
    payload jsonb NOT NULL DEFAULT '{}' CONSTRAINT events_payload_object CHECK (jsonb_typeof(payload) = 'object'),
    idempotency_key text CONSTRAINT events_idempotency_key_length CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    created_at timestamptz NOT NULL DEFAULT now(),
    dispatched_at timestamptz,
    fanned_out_at timestamptz
);
CREATE INDEX events_undispatched ON outbox.events (id) WHERE dispatched_at IS NULL;
CREATE UNIQUE INDEX events_idempotency_key ON outbox.events (organization_id, idempotency_key)
    NULLS NOT DISTINCT WHERE idempotency_key IS NOT NULL;

INSERT INTO outbox.events (id, event_id, type, organization_id, agent_id, payload, idempotency_key, created_at,
        dispatched_at, fanned_out_at)
SELECT e.id, coalesce(e.legacy_event_id, outbox.event_id(e.id, e.created_at)), e.type, e.organization_id, e.agent_id,
    e.payload, e.idempotency_key, e.created_at, e.dispatched_at, e.fanned_out_at
FROM outbox.events_partitioned AS e
ORDER BY e.id;

CREATE SEQUENCE outbox.events_id_seq AS bigint OWNED BY outbox.events.id;
SELECT setval('outbox.events_id_seq', greatest(
    (SELECT coalesce(max(e.id), 0) FROM outbox.events AS e),
    (SELECT s.last_value FROM outbox.events_partitioned_id_seq AS s), 1));
GRANT USAGE ON SEQUENCE outbox.events_id_seq TO PUBLIC;

CREATE FUNCTION outbox.events_validate() RETURNS trigger

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

CREATE TRIGGER events_validate BEFORE INSERT ON outbox.events
    FOR EACH ROW EXECUTE FUNCTION outbox.events_validate();

DROP TABLE outbox.events_partitioned;

CREATE OR REPLACE FUNCTION outbox.events_immutable() RETURNS trigger

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

DROP TABLE outbox.event_idempotency;
DROP TABLE outbox.events_legacy_ids;
DROP FUNCTION outbox.events_idempotency_claim();
DROP FUNCTION outbox.events_refuse_reserved();
DROP FUNCTION outbox.events_partitions_ensure(timestamptz, timestamptz);
DROP FUNCTION outbox.events_partition_create(timestamptz);
DROP FUNCTION outbox.events_partition_drop(text);
DROP FUNCTION outbox.events_partitions();
DROP FUNCTION outbox.event_payload_valid(jsonb);
DROP FUNCTION outbox.event_id(bigint, timestamptz);
DROP FUNCTION outbox.event_seq(text);
DROP FUNCTION outbox.event_time(text);
DROP TRIGGER settings_apply ON outbox.settings;
DROP FUNCTION outbox.settings_apply();
DROP FUNCTION outbox.max_payload_bytes();
DROP FUNCTION outbox.refuse(text, text, text, text);
ALTER TABLE outbox.settings DROP COLUMN event_id_tag, DROP COLUMN event_partition_interval;

CREATE FUNCTION outbox.publish_event(
    type text,
    payload jsonb DEFAULT '{}',
    agent_id text DEFAULT NULL,
    organization_id text DEFAULT NULL,
    idempotency_key text DEFAULT NULL
) RETURNS outbox.events
    LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    published outbox.events;
BEGIN
    INSERT INTO outbox.events AS e (type, payload, agent_id, organization_id, idempotency_key)
    VALUES (publish_event.type, coalesce(publish_event.payload, '{}'), publish_event.agent_id,
            publish_event.organization_id, publish_event.idempotency_key)
    ON CONFLICT (organization_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING e.* INTO published;

    IF published.id IS NULL THEN
        SELECT e.* INTO published
        FROM outbox.events AS e
        WHERE e.idempotency_key = publish_event.idempotency_key
            AND e.organization_id IS NOT DISTINCT FROM publish_event.organization_id;
        IF published.id IS NULL THEN
            -- Only reachable when the first event is not visible to this snapshot
            -- (REPEATABLE READ or SERIALIZABLE while it committed concurrently).
            RAISE EXCEPTION 'idempotency key % was just used by a concurrent transaction', quote_literal(publish_event.idempotency_key)
                USING ERRCODE = 'serialization_failure', HINT = 'Retry the transaction.';
        END IF;
    END IF;
    RETURN published;
END
$$;

CREATE FUNCTION outbox.publish(
    type text,
    payload jsonb DEFAULT '{}',
    agent_id text DEFAULT NULL,
    organization_id text DEFAULT NULL,
    idempotency_key text DEFAULT NULL
) RETURNS text
    LANGUAGE sql
AS $$
    SELECT (outbox.publish_event(type, payload, agent_id, organization_id, idempotency_key)).event_id
$$;
