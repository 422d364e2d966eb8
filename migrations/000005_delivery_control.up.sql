-- Delivery control: concurrency caps, circuit breaking, ordered delivery,
-- operational events, and indexes for the delivery history.

ALTER TABLE outbox.subscriptions
    -- Deliveries in flight at once, across every daemon (leases below). NULL keeps
    -- only each daemon's own default cap.
    ADD COLUMN max_in_flight integer
        CONSTRAINT subscriptions_max_in_flight CHECK (max_in_flight BETWEEN 1 AND 10000),
    -- 'agent': one agent's events reach this subscription one at a time, in outbox order.
    ADD COLUMN ordering text NOT NULL DEFAULT 'none'
        CONSTRAINT subscriptions_ordering CHECK (ordering IN ('none', 'agent')),
    -- What an ordered line does when one of its deliveries ends dead: wait until it
    -- is retried ('block') or go on without it ('skip').
    ADD COLUMN on_dead text NOT NULL DEFAULT 'block'
        CONSTRAINT subscriptions_on_dead CHECK (on_dead IN ('block', 'skip')),
    -- Circuit breaker: attempts failed in a row, since when, and until when
    -- deliveries are held back (not attempted, no attempt spent).
    ADD COLUMN failure_streak integer NOT NULL DEFAULT 0,
    ADD COLUMN failing_since timestamptz,
    ADD COLUMN circuit_open_until timestamptz;

-- One row per delivery attempt in flight to a subscription with max_in_flight set.
-- A lease outlives a killed daemon only until expires_at (the delivery's timeout).
CREATE TABLE outbox.delivery_leases (
    job_id bigint PRIMARY KEY,
    subscription_id text NOT NULL REFERENCES outbox.subscriptions (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL
);
CREATE INDEX delivery_leases_subscription ON outbox.delivery_leases (subscription_id);

-- Takes a lease for job on sub if fewer than its max_in_flight are held, and says
-- whether it did. The subscription's row lock serialises takers across daemons;
-- each statement below reads a fresh snapshot, so it sees leases committed while
-- it waited for that lock.
CREATE FUNCTION outbox.delivery_lease_take(sub text, job bigint, lease interval) RETURNS boolean
    LANGUAGE plpgsql
AS $$
DECLARE
    cap integer;
    held integer;
BEGIN
    SELECT s.max_in_flight INTO cap FROM outbox.subscriptions AS s WHERE s.id = sub FOR UPDATE;
    IF cap IS NULL THEN
        RETURN true;
    END IF;
    DELETE FROM outbox.delivery_leases AS l WHERE l.subscription_id = sub AND l.expires_at <= clock_timestamp();
    SELECT count(*) INTO held FROM outbox.delivery_leases AS l WHERE l.subscription_id = sub AND l.job_id <> job;
    IF held >= cap THEN
        RETURN false;
    END IF;
    INSERT INTO outbox.delivery_leases AS l (job_id, subscription_id, expires_at)
    VALUES (job, sub, clock_timestamp() + lease)
    ON CONFLICT (job_id) DO UPDATE SET expires_at = excluded.expires_at;
    RETURN true;
END
$$;

-- "*" no longer matches outboxd's own operational events (outboxd.subscription.disabled,
-- …): a subscription receives them only by naming them, as "outboxd.*" or exactly.
CREATE OR REPLACE FUNCTION outbox.event_type_matches(patterns text[], event_type text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT EXISTS (
        SELECT 1 FROM unnest(patterns) AS p
        WHERE (p = '*' AND NOT starts_with(event_type, 'outboxd.'))
            OR p = event_type
            OR (right(p, 2) = '.*' AND starts_with(event_type, left(p, -1)))
    )
$$;

-- The outboxd.* types are reserved for the daemon, so an operator can trust them.
-- The daemon marks its own transaction with the setting outboxd.operational.
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

-- Ordered delivery: the unfinished deliveries of each (subscription, agent) line,
-- by position. Only deliveries of ordered subscriptions carry args.seq.
CREATE INDEX river_job_outboxd_ordered_line ON outbox.river_job
    ((args ->> 'subscription_id'), (coalesce(args ->> 'agent_id', '')), ((args ->> 'seq')::bigint))
    WHERE kind = 'outboxd.delivery' AND args ? 'seq' AND state NOT IN ('completed', 'cancelled');

-- Delivery history (GET /v1/deliveries?subscription_id=…) newest first, and
-- recovery's scan of one subscription's deliveries. Every index on river_job is
-- paid for on each state change of every job, so this is the only one added for
-- all deliveries: the event filter uses River's GIN index on args, and the agent
-- and type filters look the event up.
CREATE INDEX river_job_outboxd_delivery_subscription ON outbox.river_job ((args ->> 'subscription_id'), id)
    WHERE kind = 'outboxd.delivery';
