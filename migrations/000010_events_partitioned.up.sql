-- outbox.events, shaped for months at volume and for the producer's cost.
--
-- * Partitioned by day (UTC) of created_at, so retention drops a day's partition
--   instead of deleting rows one by one. Partitions are created days ahead (by this
--   migration and then by the daemon); a DEFAULT partition takes any row no day
--   partition covers, so a producer's INSERT never fails for want of a partition.
-- * No stored public id. An event's id (evt_…) is derived from its position and
--   creation time: 12 hex digits of milliseconds since the epoch (ids still sort by
--   time), 8 hex digits that are this installation's own (settings.event_id_tag, so
--   two installations never give two events one id), and 12 hex digits of the
--   position. outbox.event_id() makes it, outbox.event_seq() and outbox.event_time()
--   read it back, and a lookup by id is an index probe into one partition. This
--   spares every INSERT the random id, its text and its unique index.
-- * Idempotency keys are unique per organization across all partitions through
--   outbox.event_idempotency, which only keyed events touch.
-- * Validation runs as CHECK constraints whose SQL functions Postgres inlines, with
--   the same clear messages as before; only an INSERT that sets a column reserved
--   for outboxd (or a reserved type) reaches a PL/pgSQL trigger, which refuses it.
--
-- Existing events are copied over with their ids (legacy_event_id keeps the public
-- id they were published with, so retries of their deliveries keep their
-- webhook-id). The copy takes the table's lock for as long as it runs.

-- This installation's part of every event id.
ALTER TABLE outbox.settings
    ADD COLUMN event_id_tag text NOT NULL DEFAULT substr(md5(gen_random_uuid()::text), 1, 8)
        CONSTRAINT settings_event_id_tag CHECK (event_id_tag ~ '^[0-9a-f]{8}$');

-- Raises a check_violation with a clear message; the type check below calls it
-- only when a value is invalid.
CREATE FUNCTION outbox.refuse(message text, column_name text, constraint_name text, hint text) RETURNS boolean
    LANGUAGE plpgsql PARALLEL SAFE
AS $$
BEGIN
    RAISE EXCEPTION '%', message
        USING ERRCODE = 'check_violation', COLUMN = column_name, CONSTRAINT = constraint_name, HINT = hint;
END
$$;

-- The largest payload, in bytes of JSON text: a constant function, planned once
-- per session by the payload check; a trigger on outbox.settings rewrites it (and
-- so replans the check) when max_payload_bytes changes.
CREATE FUNCTION outbox.max_payload_bytes() RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT 262144 $$;

CREATE FUNCTION outbox.settings_apply() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    EXECUTE format('CREATE OR REPLACE FUNCTION outbox.max_payload_bytes() RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS %L',
        format('SELECT %s', NEW.max_payload_bytes));
    RETURN NEW;
END
$$;
CREATE TRIGGER settings_apply AFTER INSERT OR UPDATE OF max_payload_bytes ON outbox.settings
    FOR EACH ROW EXECUTE FUNCTION outbox.settings_apply();
UPDATE outbox.settings SET max_payload_bytes = max_payload_bytes;

-- Payload check: a JSON object within max_payload_bytes of JSON text. A value's
-- text takes at most six bytes per byte of its binary form (an escaped control
-- character), so the text is only measured when the binary form is large enough
-- to possibly exceed the limit. PL/pgSQL, called per row: a SQL function would
-- be inlined into the constraint again at every statement, which measured as
-- most of what a producer's INSERT cost.
CREATE FUNCTION outbox.event_payload_valid(payload jsonb) RETURNS boolean
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    IF payload IS NULL OR jsonb_typeof(payload) <> 'object' THEN
        RAISE EXCEPTION 'event payload must be a JSON object, not %', coalesce(jsonb_typeof(payload), 'NULL')
            USING ERRCODE = 'check_violation', COLUMN = 'payload', CONSTRAINT = 'events_payload_object',
                  HINT = 'Wrap the value in an object, like {"value": ...}.';
    END IF;
    IF pg_column_size(payload) * 6 <= outbox.max_payload_bytes() OR octet_length(payload::text) <= outbox.max_payload_bytes() THEN
        RETURN true;
    END IF;
    RAISE EXCEPTION 'event payload is % bytes, over the limit of % bytes', octet_length(payload::text), outbox.max_payload_bytes()
        USING ERRCODE = 'check_violation', COLUMN = 'payload', CONSTRAINT = 'events_payload_size',
              HINT = 'Send ids and small facts, not documents; the limit is outbox.settings.max_payload_bytes.';
END
$$;

-- Public ids. Redefined below with this installation's tag in place of 00000000.
CREATE FUNCTION outbox.event_id(seq bigint, created_at timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$
    SELECT 'evt_'
        || lpad(to_hex(floor(extract(epoch FROM created_at - '1970-01-01 00:00:00+00'::timestamptz) * 1000)::bigint), 12, '0')
        || '00000000'
        || lpad(to_hex(seq), 12, '0')
$$;

-- The position in an id this installation made, or NULL.
CREATE FUNCTION outbox.event_seq(event_id text) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$
    SELECT CASE WHEN event_id ~ '^evt_[0-9a-f]{12}00000000[0-9a-f]{12}$'
        THEN ('x' || lpad(right(event_id, 12), 16, '0'))::bit(64)::bigint END
$$;

-- The millisecond in which an id's event was created (its created_at lies in
-- [event_time, event_time + 1 ms)), for any evt_ id, or NULL.
CREATE FUNCTION outbox.event_time(event_id text) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$
    SELECT CASE WHEN event_id ~ '^evt_[0-9a-f]{12}'
        THEN to_timestamp(('x' || lpad(substr(event_id, 5, 12), 16, '0'))::bit(64)::bigint / 1000.0) END
$$;

DO $migration$
DECLARE
    tag text := (SELECT s.event_id_tag FROM outbox.settings AS s);
BEGIN
    EXECUTE replace($f$
        CREATE OR REPLACE FUNCTION outbox.event_id(seq bigint, created_at timestamptz) RETURNS text
            LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
        AS $$
            SELECT 'evt_'
                || lpad(to_hex(floor(extract(epoch FROM created_at - '1970-01-01 00:00:00+00'::timestamptz) * 1000)::bigint), 12, '0')
                || '00000000'
                || lpad(to_hex(seq), 12, '0')
        $$;
        CREATE OR REPLACE FUNCTION outbox.event_seq(event_id text) RETURNS bigint
            LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
        AS $$
            SELECT CASE WHEN event_id ~ '^evt_[0-9a-f]{12}00000000[0-9a-f]{12}$'
                THEN ('x' || lpad(right(event_id, 12), 16, '0'))::bit(64)::bigint END
        $$;
    $f$, '00000000', tag);
END
$migration$;

-- The old table moves aside; its rows are copied into the new one below.
ALTER TABLE outbox.events RENAME TO events_unpartitioned;
ALTER INDEX outbox.events_pkey RENAME TO events_unpartitioned_pkey;
ALTER INDEX outbox.events_undispatched RENAME TO events_unpartitioned_undispatched;
ALTER INDEX outbox.events_idempotency_key RENAME TO events_unpartitioned_idempotency_key;
ALTER SEQUENCE outbox.events_id_seq RENAME TO events_unpartitioned_id_seq;
ALTER TABLE outbox.events_unpartitioned RENAME CONSTRAINT events_event_id_key TO events_unpartitioned_event_id_key;
DROP FUNCTION outbox.publish(text, jsonb, text, text, text);
DROP FUNCTION outbox.publish_event(text, jsonb, text, text, text);

CREATE TABLE outbox.events (
    -- Position in the outbox; the relay claims in this order.
    id bigint GENERATED ALWAYS AS IDENTITY,
    -- Written out rather than in a SQL function, which Postgres would inline into
    -- the constraint again at every statement.
    type text NOT NULL CONSTRAINT events_type_format CHECK (CASE
        WHEN type ~ '^[a-z0-9_]+(\.[a-z0-9_]+)+$' AND length(type) <= 200 THEN true
        ELSE outbox.refuse('invalid event type ' || coalesce(quote_literal(type), 'NULL'), 'type', 'events_type_format',
            'An event type is two or more dot-separated words of a-z, 0-9 and _, at most 200 characters, like agent.step.completed.')
    END),
    organization_id text CONSTRAINT events_organization_id_length CHECK (length(organization_id) BETWEEN 1 AND 255),
    agent_id text CONSTRAINT events_agent_id_length CHECK (length(agent_id) BETWEEN 1 AND 255),
    payload jsonb NOT NULL DEFAULT '{}' CONSTRAINT events_payload_object CHECK (outbox.event_payload_valid(payload)),
    idempotency_key text CONSTRAINT events_idempotency_key_length CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    created_at timestamptz NOT NULL DEFAULT now(),
    -- Set by the relay when it claims the event and creates its deliveries.
    dispatched_at timestamptz,
    fanned_out_at timestamptz,
    -- The public id of an event published before this migration; NULL otherwise
    -- (the id is outbox.event_id(id, created_at)).
    legacy_event_id text,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);

CREATE TABLE outbox.events_default PARTITION OF outbox.events DEFAULT;

-- The relay's work queue: only undispatched rows, so it stays tiny however large the table grows.
CREATE INDEX events_undispatched ON outbox.events (id) WHERE dispatched_at IS NULL;
-- Where to find the events published before this migration by their stored ids.
-- A table of its own rather than an index on events, which every insert would
-- pay for although only migrated rows have such an id.
CREATE TABLE outbox.events_legacy_ids (
    legacy_event_id text PRIMARY KEY,
    event_seq bigint NOT NULL,
    event_created_at timestamptz NOT NULL
);

-- An idempotency key is unique within its organization (or among events without
-- one) across every partition. Rows go with their events' partitions.
CREATE TABLE outbox.event_idempotency (
    organization_id text,
    idempotency_key text NOT NULL,
    event_seq bigint NOT NULL,
    event_created_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX event_idempotency_key ON outbox.event_idempotency (organization_id, idempotency_key) NULLS NOT DISTINCT;
CREATE INDEX event_idempotency_created_at ON outbox.event_idempotency (event_created_at);

CREATE FUNCTION outbox.events_idempotency_claim() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO outbox.event_idempotency AS k (organization_id, idempotency_key, event_seq, event_created_at)
    VALUES (NEW.organization_id, NEW.idempotency_key, NEW.id, NEW.created_at)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'idempotency key % was already used%', quote_literal(NEW.idempotency_key),
                coalesce(' in organization ' || quote_literal(NEW.organization_id), '')
            USING ERRCODE = 'unique_violation', COLUMN = 'idempotency_key', CONSTRAINT = 'events_idempotency_key',
                  HINT = 'outbox.publish() returns the first event''s id for a repeated key instead of failing.';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER events_idempotency_claim AFTER INSERT ON outbox.events
    FOR EACH ROW WHEN (NEW.idempotency_key IS NOT NULL) EXECUTE FUNCTION outbox.events_idempotency_claim();

-- Every partition of outbox.events with its range; the DEFAULT one has none.
CREATE FUNCTION outbox.events_partitions() RETURNS TABLE (name text, from_time timestamptz, to_time timestamptz)
    LANGUAGE sql STABLE
AS $$
    SELECT c.relname::text,
        (regexp_match(pg_get_expr(c.relpartbound, c.oid), $r$FROM \('([^']+)'\)$r$))[1]::timestamptz,
        (regexp_match(pg_get_expr(c.relpartbound, c.oid), $r$TO \('([^']+)'\)$r$))[1]::timestamptz
    FROM pg_inherits AS i
    JOIN pg_class AS c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'outbox.events'::regclass
    ORDER BY 2 NULLS LAST
$$;

-- Partitions. Each covers event_partition_interval of created_at (a day unless
-- an operator chose a width that divides a day: hourly for very high volumes,
-- minutes for tests), aligned to UTC midnight. events_partition_create makes the
-- partition holding a moment unless one exists; after the width was changed it
-- fills only the gap between existing partitions. It moves that range's rows out
-- of the DEFAULT partition first (they land there only when no daemon ran for a
-- while), and attaches a table made beforehand, which does not block producers.
ALTER TABLE outbox.settings
    ADD COLUMN event_partition_interval interval NOT NULL DEFAULT '1 day'
        CONSTRAINT settings_event_partition_interval CHECK (
            extract(epoch FROM event_partition_interval) BETWEEN 60 AND 86400
            AND extract(epoch FROM event_partition_interval)::integer % 60 = 0
            AND 86400 % extract(epoch FROM event_partition_interval)::integer = 0);

CREATE FUNCTION outbox.events_partition_create(moment timestamptz) RETURNS text
    LANGUAGE plpgsql
AS $$
DECLARE
    width integer := (SELECT extract(epoch FROM s.event_partition_interval)::integer FROM outbox.settings AS s);
    lo timestamptz := to_timestamp(floor(extract(epoch FROM moment) / width) * width);
    hi timestamptz := lo + make_interval(secs => width);
    name text;
BEGIN
    IF EXISTS (SELECT 1 FROM outbox.events_partitions() AS p WHERE p.from_time <= moment AND p.to_time > moment) THEN
        RETURN NULL;
    END IF;
    lo := greatest(lo, (SELECT max(p.to_time) FROM outbox.events_partitions() AS p WHERE p.to_time <= moment));
    hi := least(hi, (SELECT min(p.from_time) FROM outbox.events_partitions() AS p WHERE p.from_time > moment));
    name := 'events_p' || to_char(lo AT TIME ZONE 'UTC', CASE WHEN width = 86400 AND lo = date_trunc('day', lo AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
        THEN 'YYYYMMDD' ELSE 'YYYYMMDD"t"HH24MISS' END);
    EXECUTE format('CREATE TABLE outbox.%I (LIKE outbox.events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
    EXECUTE format('ALTER TABLE outbox.%I SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_insert_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02)', name);
    EXECUTE format('WITH moved AS (DELETE FROM outbox.events_default WHERE created_at >= %L AND created_at < %L RETURNING *) '
        'INSERT INTO outbox.%I SELECT * FROM moved', lo, hi, name);
    EXECUTE format('ALTER TABLE outbox.events ATTACH PARTITION outbox.%I FOR VALUES FROM (%L) TO (%L)', name, lo, hi);
    RETURN name;
END
$$;

-- Makes the partitions for every moment of [from_time, to_time] that has none,
-- and returns their names.
CREATE FUNCTION outbox.events_partitions_ensure(from_time timestamptz, to_time timestamptz) RETURNS SETOF text
    LANGUAGE plpgsql
AS $$
DECLARE
    width interval := (SELECT s.event_partition_interval FROM outbox.settings AS s);
    moment timestamptz := from_time;
    made text;
BEGIN
    WHILE moment <= to_time LOOP
        made := outbox.events_partition_create(moment);
        IF made IS NOT NULL THEN
            RETURN NEXT made;
        END IF;
        moment := moment + width;
    END LOOP;
    IF moment - width < to_time THEN
        made := outbox.events_partition_create(to_time);
        IF made IS NOT NULL THEN
            RETURN NEXT made;
        END IF;
    END IF;
END
$$;

-- Drops a partition with its idempotency keys. Dropping takes the table's
-- lock for an instant; callers set lock_timeout so that it never makes producers
-- wait behind it for long.
CREATE FUNCTION outbox.events_partition_drop(partition_name text) RETURNS void
    LANGUAGE plpgsql
AS $$
DECLARE
    part record;
BEGIN
    SELECT * INTO part FROM outbox.events_partitions() AS p WHERE p.name = partition_name AND p.from_time IS NOT NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no partition % of outbox.events (the DEFAULT partition is never dropped)', quote_literal(partition_name)
            USING ERRCODE = 'undefined_table';
    END IF;
    DELETE FROM outbox.event_idempotency AS k WHERE k.event_created_at >= part.from_time AND k.event_created_at < part.to_time;
    DELETE FROM outbox.events_legacy_ids AS l WHERE l.event_created_at >= part.from_time AND l.event_created_at < part.to_time;
    EXECUTE format('DROP TABLE outbox.%I', partition_name);
END
$$;

-- Partitions for every day that holds existing events (within a year), and for
-- today and the next three days.
SELECT outbox.events_partition_create(d)
FROM (
    SELECT DISTINCT date_trunc('day', e.created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS d
    FROM outbox.events_unpartitioned AS e
    WHERE e.created_at > now() - interval '400 days' AND e.created_at < now() + interval '4 days'
) AS days;
SELECT outbox.events_partitions_ensure(now(), now() + interval '3 days');

-- Copy the existing events, keeping positions and public ids (before the
-- trigger that refuses producers these columns exists).
INSERT INTO outbox.events (id, type, organization_id, agent_id, payload, idempotency_key, created_at,
        dispatched_at, fanned_out_at, legacy_event_id)
    OVERRIDING SYSTEM VALUE
SELECT e.id, e.type, e.organization_id, e.agent_id, e.payload, e.idempotency_key, e.created_at,
    e.dispatched_at, e.fanned_out_at, e.event_id
FROM outbox.events_unpartitioned AS e
ORDER BY e.id;

DO $migration$
DECLARE
    next_seq bigint := (SELECT coalesce(max(e.id), 0) + 1 FROM outbox.events_unpartitioned AS e);
    old_next bigint := (SELECT last_value + 1 FROM outbox.events_unpartitioned_id_seq);
BEGIN
    EXECUTE format('ALTER TABLE outbox.events ALTER COLUMN id RESTART WITH %s', greatest(next_seq, old_next));
END
$migration$;

INSERT INTO outbox.events_legacy_ids (legacy_event_id, event_seq, event_created_at)
SELECT e.event_id, e.id, e.created_at FROM outbox.events_unpartitioned AS e;

DROP TABLE outbox.events_unpartitioned;
DROP FUNCTION outbox.events_validate();

-- Refuses what producers may not set (migration 7's rule, kept): the columns
-- only outboxd writes, and the outboxd.* types, which the daemon publishes itself
-- (marking its transaction with the setting outboxd.operational). id is an
-- identity column, so a value for it is refused by Postgres unless the producer
-- insists with OVERRIDING SYSTEM VALUE; a position beyond those handed out is
-- then refused here, since Postgres would later hand it to another event. The
-- WHEN clause keeps ordinary inserts from ever calling the function.
CREATE FUNCTION outbox.events_refuse_reserved() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    IF NEW.id > coalesce(pg_sequence_last_value('outbox.events_id_seq'), 0) THEN
        RAISE EXCEPTION 'cannot set id: outboxd assigns each event its position, the order the relay claims events in'
            USING ERRCODE = 'generated_always', COLUMN = 'id', TABLE = 'events', SCHEMA = TG_TABLE_SCHEMA,
                  HINT = 'Leave id out of the INSERT.';
    END IF;
    IF NEW.dispatched_at IS NOT NULL THEN
        RAISE EXCEPTION 'cannot set dispatched_at: outboxd sets it when the relay claims the event, and an event inserted with it would never be delivered'
            USING ERRCODE = 'generated_always', COLUMN = 'dispatched_at', TABLE = 'events', SCHEMA = TG_TABLE_SCHEMA,
                  HINT = 'Leave dispatched_at out of the INSERT.';
    END IF;
    IF NEW.fanned_out_at IS NOT NULL THEN
        RAISE EXCEPTION 'cannot set fanned_out_at: outboxd sets it when it creates the event''s deliveries'
            USING ERRCODE = 'generated_always', COLUMN = 'fanned_out_at', TABLE = 'events', SCHEMA = TG_TABLE_SCHEMA,
                  HINT = 'Leave fanned_out_at out of the INSERT.';
    END IF;
    IF NEW.legacy_event_id IS NOT NULL THEN
        RAISE EXCEPTION 'cannot set legacy_event_id: it keeps the ids of events published before outboxd derived them'
            USING ERRCODE = 'generated_always', COLUMN = 'legacy_event_id', TABLE = 'events', SCHEMA = TG_TABLE_SCHEMA,
                  HINT = 'Leave legacy_event_id out of the INSERT; an event''s id is outbox.event_id(id, created_at).';
    END IF;
    IF starts_with(NEW.type, 'outboxd.') AND coalesce(current_setting('outboxd.operational', true), '') <> 'on' THEN
        RAISE EXCEPTION 'event type % is reserved: outboxd.* events are published by outboxd itself', quote_literal(NEW.type)
            USING ERRCODE = 'check_violation', COLUMN = 'type', CONSTRAINT = 'events_type_reserved',
                  HINT = 'Choose a type outside the outboxd. namespace.';
    END IF;
    RETURN NEW;
END
$$;
-- Reading the sequence's last value needs SELECT on it; it tells nothing secret.
GRANT SELECT ON SEQUENCE outbox.events_id_seq TO PUBLIC;
CREATE TRIGGER events_refuse_reserved BEFORE INSERT ON outbox.events
    FOR EACH ROW
    WHEN (NEW.dispatched_at IS NOT NULL OR NEW.fanned_out_at IS NOT NULL OR NEW.legacy_event_id IS NOT NULL
        OR starts_with(NEW.type, 'outboxd.')
        OR NEW.id > coalesce(pg_sequence_last_value('outbox.events_id_seq'), 0))
    EXECUTE FUNCTION outbox.events_refuse_reserved();

-- An event is immutable once inserted (migration 7): an UPDATE would skip every
-- check, could forge a reserved type, and would change what later attempts of a
-- delivery send under the same webhook-id. created_at is part of the public id
-- now, so it is immutable too. The relay's UPDATEs name only dispatched_at and
-- fanned_out_at, so they never run it.
CREATE OR REPLACE FUNCTION outbox.events_immutable() RETURNS trigger
    LANGUAGE plpgsql
AS $$
DECLARE
    changed text;
BEGIN
    changed := CASE
        WHEN NEW.id IS DISTINCT FROM OLD.id THEN 'id'
        WHEN NEW.created_at IS DISTINCT FROM OLD.created_at THEN 'created_at'
        WHEN NEW.type IS DISTINCT FROM OLD.type THEN 'type'
        WHEN NEW.organization_id IS DISTINCT FROM OLD.organization_id THEN 'organization_id'
        WHEN NEW.agent_id IS DISTINCT FROM OLD.agent_id THEN 'agent_id'
        WHEN NEW.payload IS DISTINCT FROM OLD.payload THEN 'payload'
        WHEN NEW.idempotency_key IS DISTINCT FROM OLD.idempotency_key THEN 'idempotency_key'
        WHEN NEW.legacy_event_id IS DISTINCT FROM OLD.legacy_event_id THEN 'legacy_event_id'
    END;
    IF changed IS NOT NULL THEN
        RAISE EXCEPTION 'cannot change % of published event %: events are immutable once inserted', changed,
                coalesce(OLD.legacy_event_id, outbox.event_id(OLD.id, OLD.created_at))
            USING ERRCODE = 'feature_not_supported', COLUMN = changed, TABLE = 'events', SCHEMA = TG_TABLE_SCHEMA,
                  HINT = 'Publish a new event instead: receivers may already hold this one under its webhook-id.';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER events_immutable
    BEFORE UPDATE OF id, created_at, type, organization_id, agent_id, payload, idempotency_key, legacy_event_id ON outbox.events
    FOR EACH ROW EXECUTE FUNCTION outbox.events_immutable();


-- Validated publish. Returns the event's row; a repeated idempotency key returns
-- the row of the first event published with it. outbox.publish() below is the form
-- SQL producers usually want.
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
    IF publish_event.idempotency_key IS NULL THEN
        INSERT INTO outbox.events AS e (type, payload, agent_id, organization_id)
        VALUES (publish_event.type, coalesce(publish_event.payload, '{}'), publish_event.agent_id, publish_event.organization_id)
        RETURNING e.* INTO published;
        RETURN published;
    END IF;

    SELECT e.* INTO published
    FROM outbox.event_idempotency AS k
    JOIN outbox.events AS e ON e.id = k.event_seq AND e.created_at = k.event_created_at
    WHERE k.idempotency_key = publish_event.idempotency_key
        AND k.organization_id IS NOT DISTINCT FROM publish_event.organization_id;
    IF published.id IS NOT NULL THEN
        RETURN published;
    END IF;
    BEGIN
        INSERT INTO outbox.events AS e (type, payload, agent_id, organization_id, idempotency_key)
        VALUES (publish_event.type, coalesce(publish_event.payload, '{}'), publish_event.agent_id,
                publish_event.organization_id, publish_event.idempotency_key)
        RETURNING e.* INTO published;
    EXCEPTION WHEN unique_violation THEN
        -- A concurrent transaction published with this key first and has committed.
        SELECT e.* INTO published
        FROM outbox.event_idempotency AS k
        JOIN outbox.events AS e ON e.id = k.event_seq AND e.created_at = k.event_created_at
        WHERE k.idempotency_key = publish_event.idempotency_key
            AND k.organization_id IS NOT DISTINCT FROM publish_event.organization_id;
        IF published.id IS NULL THEN
            -- Only reachable when the first event is not visible to this snapshot
            -- (REPEATABLE READ or SERIALIZABLE while it committed concurrently).
            RAISE EXCEPTION 'idempotency key % was just used by a concurrent transaction', quote_literal(publish_event.idempotency_key)
                USING ERRCODE = 'serialization_failure', HINT = 'Retry the transaction.';
        END IF;
    END;
    RETURN published;
END
$$;

-- Validated publish for SQL producers: returns the event's public id (evt_…); a
-- repeated idempotency key returns the id of the first event published with it.
CREATE FUNCTION outbox.publish(
    type text,
    payload jsonb DEFAULT '{}',
    agent_id text DEFAULT NULL,
    organization_id text DEFAULT NULL,
    idempotency_key text DEFAULT NULL
) RETURNS text
    LANGUAGE sql
AS $$
    SELECT coalesce(p.legacy_event_id, outbox.event_id(p.id, p.created_at))
    FROM outbox.publish_event(type, payload, agent_id, organization_id, idempotency_key) AS p
$$;

-- The event with a public id, for people looking one up in SQL.
CREATE FUNCTION outbox.event(event_id text) RETURNS SETOF outbox.events
    LANGUAGE sql STABLE
AS $$
    SELECT e.* FROM outbox.events AS e
    WHERE e.id = outbox.event_seq(event_id)
        AND e.created_at >= outbox.event_time(event_id)
        AND e.created_at < outbox.event_time(event_id) + interval '1 millisecond'
    UNION ALL
    SELECT e.* FROM outbox.events_legacy_ids AS l
    JOIN outbox.events AS e ON e.id = l.event_seq AND e.created_at = l.event_created_at
    WHERE l.legacy_event_id = event_id
$$;
