-- outboxd core schema.
--
-- Every object is written with the qualifier "outbox."; outboxd rewrites it to the
-- configured schema (--schema) before running this file, so one database can hold
-- several independent outboxd installations. River's own tables are migrated into
-- the same schema first (rivermigrate), which is why the deliveries view below can
-- read outbox.river_job. The migrator creates the schema itself before River's tables.

-- One row of settings that SQL producers and the daemon share.
CREATE TABLE outbox.settings (
    singleton boolean PRIMARY KEY DEFAULT true CONSTRAINT settings_singleton CHECK (singleton),
    -- Largest accepted event payload, measured as the length in bytes of its JSON text.
    max_payload_bytes integer NOT NULL DEFAULT 262144
        CONSTRAINT settings_max_payload_bytes CHECK (max_payload_bytes BETWEEN 2 AND 67108864)
);
INSERT INTO outbox.settings DEFAULT VALUES;

-- Public ids: a prefix, 12 hex digits of milliseconds since the epoch (so ids sort by
-- creation time), then 20 hex digits (80 bits) of randomness.
CREATE FUNCTION outbox.new_id(prefix text) RETURNS text
    LANGUAGE sql VOLATILE PARALLEL SAFE
AS $$
    SELECT prefix
        || lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
        || substr(md5(gen_random_uuid()::text), 1, 20)
$$;

-- Event types are dot-separated lower-case words: agent.step.completed.
CREATE FUNCTION outbox.event_type_valid(event_type text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT event_type ~ '^[a-z0-9_]+(\.[a-z0-9_]+)+$' AND length(event_type) <= 200
$$;

-- Subscription patterns: an exact type, a prefix ending in ".*" (agent.step.*), or "*".
CREATE FUNCTION outbox.event_type_patterns_valid(patterns text[]) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT cardinality(patterns) BETWEEN 1 AND 100
        AND array_position(patterns, NULL) IS NULL
        AND NOT EXISTS (
            SELECT 1 FROM unnest(patterns) AS p
            WHERE NOT (p = '*' OR p ~ '^[a-z0-9_]+(\.[a-z0-9_]+)*\.\*$' OR outbox.event_type_valid(p))
        )
$$;

CREATE FUNCTION outbox.event_type_matches(patterns text[], event_type text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT EXISTS (
        SELECT 1 FROM unnest(patterns) AS p
        WHERE p = '*'
            OR p = event_type
            OR (right(p, 2) = '.*' AND starts_with(event_type, left(p, -1)))
    )
$$;

CREATE TABLE outbox.events (
    -- Position in the outbox; the relay claims in this order.
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Public id, sent as webhook-id: stable across retries, redeliveries and replays.
    event_id text NOT NULL DEFAULT outbox.new_id('evt_') CONSTRAINT events_event_id_key UNIQUE,
    type text NOT NULL CONSTRAINT events_type_format CHECK (outbox.event_type_valid(type)),
    organization_id text CONSTRAINT events_organization_id_length CHECK (length(organization_id) BETWEEN 1 AND 255),
    agent_id text CONSTRAINT events_agent_id_length CHECK (length(agent_id) BETWEEN 1 AND 255),
    payload jsonb NOT NULL DEFAULT '{}' CONSTRAINT events_payload_object CHECK (jsonb_typeof(payload) = 'object'),
    idempotency_key text CONSTRAINT events_idempotency_key_length CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    created_at timestamptz NOT NULL DEFAULT now(),
    -- Set by the relay when it hands the event to a fan-out job.
    dispatched_at timestamptz,
    -- Set by the fan-out job in the transaction that creates the event's deliveries.
    fanned_out_at timestamptz
);

-- The relay's work queue: only undispatched rows, so it stays tiny however large the table grows.
CREATE INDEX events_undispatched ON outbox.events (id) WHERE dispatched_at IS NULL;

-- A repeated idempotency key within one organization (or among events without one) is the same event.
CREATE UNIQUE INDEX events_idempotency_key ON outbox.events (organization_id, idempotency_key)
    NULLS NOT DISTINCT WHERE idempotency_key IS NOT NULL;

-- Runs before the constraints so a plain INSERT gets the same clear messages as outbox.publish().
CREATE FUNCTION outbox.events_validate() RETURNS trigger
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

CREATE TRIGGER events_validate BEFORE INSERT ON outbox.events
    FOR EACH ROW EXECUTE FUNCTION outbox.events_validate();

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
    SELECT (outbox.publish_event(type, payload, agent_id, organization_id, idempotency_key)).event_id
$$;

-- Wakes the relays now instead of at their next poll. Optional: call it in a
-- producer's transaction for the lowest latency, at the cost of Postgres' notify
-- lock at commit (measured to cap durable insert rates near the disk's fsync rate,
-- so outboxd does not do it per row). The channel is "<schema>.wake".
CREATE FUNCTION outbox.wake() RETURNS void
    LANGUAGE sql
AS $$
    SELECT pg_notify('outbox.wake', '')
$$;

CREATE TABLE outbox.subscriptions (
    id text PRIMARY KEY DEFAULT outbox.new_id('sub_'),
    -- Scope: both NULL is global; agent_id set limits it to that agent's events, organization_id to that organization's.
    organization_id text CONSTRAINT subscriptions_organization_id_length CHECK (length(organization_id) BETWEEN 1 AND 255),
    agent_id text CONSTRAINT subscriptions_agent_id_length CHECK (length(agent_id) BETWEEN 1 AND 255),
    url text NOT NULL CONSTRAINT subscriptions_url_scheme CHECK (url ~ '^https?://' AND length(url) <= 2048),
    event_types text[] NOT NULL DEFAULT '{*}'
        CONSTRAINT subscriptions_event_types_valid CHECK (outbox.event_type_patterns_valid(event_types)),
    enabled boolean NOT NULL DEFAULT true,
    description text NOT NULL DEFAULT '' CONSTRAINT subscriptions_description_length CHECK (length(description) <= 1024),
    -- Extra request headers, an object of strings.
    headers jsonb NOT NULL DEFAULT '{}' CONSTRAINT subscriptions_headers_object CHECK (jsonb_typeof(headers) = 'object'),
    -- Delays between attempts in milliseconds; NULL uses the daemon's default schedule.
    retry_schedule_ms bigint[]
        CONSTRAINT subscriptions_retry_schedule_valid CHECK (
            cardinality(retry_schedule_ms) <= 50
            AND array_position(retry_schedule_ms, NULL) IS NULL
            AND 0 < ALL (retry_schedule_ms)
        ),
    disabled_reason text,
    disabled_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Fan-out looks subscriptions up by the event's agent, then organization, then the global ones.
CREATE INDEX subscriptions_agent ON outbox.subscriptions (agent_id) WHERE enabled AND agent_id IS NOT NULL;
CREATE INDEX subscriptions_organization ON outbox.subscriptions (organization_id)
    WHERE enabled AND agent_id IS NULL AND organization_id IS NOT NULL;
CREATE INDEX subscriptions_global ON outbox.subscriptions (id)
    WHERE enabled AND agent_id IS NULL AND organization_id IS NULL;

-- Signing secrets, AES-256-GCM encrypted (the subscription id is the associated data).
-- Several rows per subscription during a rotation; a row whose expires_at has passed no longer signs.
CREATE TABLE outbox.subscription_secrets (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_id text NOT NULL REFERENCES outbox.subscriptions (id) ON DELETE CASCADE,
    -- Which encryption key sealed this row, so keys can be rotated.
    key_id text NOT NULL,
    ciphertext bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz
);
CREATE INDEX subscription_secrets_subscription ON outbox.subscription_secrets (subscription_id);

-- One row per delivery (event x subscription). The record is the River job row itself:
-- River keeps the state, attempt count, errors and schedule; the delivery worker adds
-- one entry per attempt to metadata.attempts (status code, error class, duration, excerpt).
CREATE VIEW outbox.deliveries AS
SELECT
    j.id,
    (j.args ->> 'event_id')::text AS event_id,
    (j.args ->> 'subscription_id')::text AS subscription_id,
    (CASE
        WHEN j.state = 'completed' THEN 'delivered'
        WHEN j.state = 'discarded' THEN 'dead'
        WHEN j.state = 'cancelled' THEN 'cancelled'
        WHEN j.state = 'running' THEN 'delivering'
        WHEN j.attempt > 0 THEN 'retrying'
        ELSE 'pending'
    END)::text AS state,
    j.attempt::integer AS attempts,
    j.max_attempts::integer AS max_attempts,
    (j.metadata -> 'attempts' -> -1 ->> 'status_code')::integer AS last_status_code,
    (j.errors[cardinality(j.errors)] ->> 'error')::text AS last_error,
    j.created_at,
    (CASE WHEN j.state = 'completed' THEN j.finalized_at END)::timestamptz AS delivered_at,
    (CASE WHEN j.state IN ('available', 'scheduled', 'retryable', 'pending') THEN j.scheduled_at END)::timestamptz AS next_attempt_at,
    j.finalized_at,
    coalesce(j.metadata -> 'attempts', '[]'::jsonb)::jsonb AS attempt_log
FROM outbox.river_job AS j
WHERE j.kind = 'outboxd.delivery';
