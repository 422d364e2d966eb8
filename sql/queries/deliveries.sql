-- name: DeliveryTarget :one
-- Everything one delivery attempt needs, in one round trip: the subscription, the
-- event (NULL columns when it no longer exists) and the secrets that sign right now.
SELECT
    s.id AS subscription_id,
    s.url,
    s.enabled,
    s.headers,
    s.retry_schedule_ms,
    s.rate_limit_per_second,
    s.max_in_flight,
    s.ordering,
    s.on_dead,
    s.failure_streak,
    s.organization_id AS subscription_organization_id,
    -- Seconds until the circuit breaker lets an attempt through (0 when it does
    -- now), measured on the database's clock like the breaker itself.
    (CASE WHEN s.circuit_open_until IS NULL THEN -1
        ELSE greatest(extract(epoch FROM s.circuit_open_until - now()), 0) END)::float8 AS circuit_wait_seconds,
    e.id AS event_seq,
    e.event_id,
    e.type,
    e.organization_id,
    e.agent_id,
    e.payload,
    e.created_at,
    coalesce((
        SELECT array_agg(ss.key_id ORDER BY ss.id)
        FROM outbox.subscription_secrets AS ss
        WHERE ss.subscription_id = s.id AND (ss.expires_at IS NULL OR ss.expires_at > now())
    ), '{}')::text[] AS secret_key_ids,
    coalesce((
        SELECT array_agg(ss.ciphertext ORDER BY ss.id)
        FROM outbox.subscription_secrets AS ss
        WHERE ss.subscription_id = s.id AND (ss.expires_at IS NULL OR ss.expires_at > now())
    ), '{}')::bytea[] AS secret_ciphertexts
FROM outbox.subscriptions AS s
LEFT JOIN outbox.events AS e ON e.event_id = @event_id
WHERE s.id = @subscription_id;

-- name: DeliveryList :many
-- Newest first. The filters run on River's job rows: the subscription has an index
-- that walks its deliveries newest first (migration 5); the event uses River's GIN
-- index on args; organization is the subscription's, agent and type the event's.
SELECT sqlc.embed(d)
FROM outbox.deliveries AS d
WHERE d.id IN (
    SELECT j.id
    FROM outbox.river_job AS j
    WHERE j.kind = 'outboxd.delivery'
        AND (sqlc.narg(event_id)::text IS NULL OR j.args @> jsonb_build_object('event_id', sqlc.narg(event_id)::text))
        AND (sqlc.narg(subscription_id)::text IS NULL OR j.args ->> 'subscription_id' = sqlc.narg(subscription_id))
        AND (sqlc.narg(agent_id)::text IS NULL OR EXISTS (
            SELECT 1 FROM outbox.events AS e WHERE e.event_id = j.args ->> 'event_id' AND e.agent_id = sqlc.narg(agent_id)))
        AND (sqlc.narg(organization_id)::text IS NULL OR j.args ->> 'subscription_id' IN (
            SELECT s.id FROM outbox.subscriptions AS s WHERE s.organization_id = sqlc.narg(organization_id)))
        AND (sqlc.narg(event_type)::text IS NULL OR EXISTS (
            SELECT 1 FROM outbox.events AS e WHERE e.event_id = j.args ->> 'event_id' AND e.type = sqlc.narg(event_type)))
        AND (sqlc.narg(state)::text IS NULL OR (CASE
            WHEN j.state = 'completed' THEN 'delivered'
            WHEN j.state = 'discarded' THEN 'dead'
            WHEN j.state = 'cancelled' THEN 'cancelled'
            WHEN j.state = 'running' THEN 'delivering'
            WHEN j.attempt > 0 THEN 'retrying'
            ELSE 'pending'
        END) = sqlc.narg(state))
        AND (sqlc.narg(since)::timestamptz IS NULL OR j.created_at >= sqlc.narg(since))
        AND (sqlc.narg(until)::timestamptz IS NULL OR j.created_at < sqlc.narg(until))
        AND (sqlc.narg(before_id)::bigint IS NULL OR j.id < sqlc.narg(before_id))
    ORDER BY j.id DESC
    LIMIT @max
)
ORDER BY d.id DESC;

-- name: DeliveryGet :one
SELECT * FROM outbox.deliveries WHERE id = @id;

-- name: DeliveryFailedIDs :many
-- Deliveries of a subscription that ended dead or cancelled (the subscription was
-- disabled) in [since, until), in id order from after_id, for recovery.
SELECT j.id
FROM outbox.river_job AS j
WHERE j.kind = 'outboxd.delivery'
    AND j.state IN ('discarded', 'cancelled')
    AND j.args ->> 'subscription_id' = @subscription_id::text
    AND j.finalized_at >= @since
    AND j.finalized_at < @until
    AND j.id > @after_id
ORDER BY j.id
LIMIT @max;

-- name: RecoveryProgressSet :exec
-- A running recovery's progress (recovery_* keys), merged into its River job's
-- metadata so any daemon (and the River UI) can read it while the job runs.
UPDATE outbox.river_job
SET metadata = metadata || @progress::jsonb
WHERE id = @id AND kind = 'outboxd.recover';

-- name: RecoveryMissedEvents :many
-- Events created in [since, until) that the subscription matches but never got a
-- delivery for, because it was disabled when they were fanned out; in outbox order
-- from after_seq, for recovery.
SELECT e.id AS event_seq, e.event_id, e.agent_id, s.retry_schedule_ms, s.ordering
FROM outbox.subscriptions AS s
JOIN outbox.events AS e
    ON e.created_at >= greatest(@since::timestamptz, s.created_at) AND e.created_at < @until::timestamptz
WHERE s.id = @subscription_id
    AND e.id > @after_seq
    AND e.fanned_out_at IS NOT NULL
    AND (s.agent_id IS NULL OR e.agent_id = s.agent_id)
    AND (s.organization_id IS NULL OR e.organization_id = s.organization_id)
    AND outbox.event_type_matches(s.event_types, e.type)
    AND NOT EXISTS (
        SELECT 1 FROM outbox.river_job AS j
        WHERE j.kind = 'outboxd.delivery'
            AND j.args @> jsonb_build_object('event_id', e.event_id, 'subscription_id', s.id))
ORDER BY e.id
LIMIT @max;

-- name: DeliveryLeaseTake :one
-- One of the subscription's max_in_flight slots for this attempt (true), or none
-- free (false). True also when the subscription sets no cap.
SELECT outbox.delivery_lease_take(@subscription_id::text, @job_id::bigint, make_interval(secs => @lease_seconds::float8))::boolean AS taken;

-- name: DeliveryLeaseRelease :exec
DELETE FROM outbox.delivery_leases WHERE job_id = @job_id;

-- name: OrderedBlocker :one
-- The first unfinished delivery ahead of this one in its (subscription, agent)
-- line. A dead one blocks too unless the subscription skips dead deliveries.
SELECT j.id, j.state::text AS state, j.scheduled_at
FROM outbox.river_job AS j
WHERE j.kind = 'outboxd.delivery' AND j.args ? 'seq' AND j.state NOT IN ('completed', 'cancelled')
    AND j.args ->> 'subscription_id' = @subscription_id::text
    AND coalesce(j.args ->> 'agent_id', '') = @agent_id::text
    AND (j.args ->> 'seq')::bigint < @seq::bigint
    AND NOT (@skip_dead::boolean AND j.state = 'discarded')
ORDER BY (j.args ->> 'seq')::bigint
LIMIT 1;

-- name: OrderedEventsPending :one
-- Whether an earlier event of the agent still waits for fan-out: its delivery may
-- not exist yet, but it comes first. Such an event is either not yet claimed by
-- a relay (the small events_undispatched index) or in a fan-out job that has not
-- finished (found by River's state index); the relay's claim marks the one and
-- creates the other in one transaction, so nothing falls between them.
SELECT (
    EXISTS (
        SELECT 1 FROM outbox.events AS e
        WHERE e.dispatched_at IS NULL AND e.id < @seq::bigint AND coalesce(e.agent_id, '') = @agent_id::text
    )
    OR EXISTS (
        SELECT 1
        FROM outbox.river_job AS j
        CROSS JOIN LATERAL jsonb_array_elements_text(j.args -> 'event_seqs') AS batch(seq)
        JOIN outbox.events AS e ON e.id = batch.seq::bigint
        WHERE j.state IN ('available', 'running', 'retryable', 'scheduled', 'pending')
            AND j.queue = 'fanout' AND j.kind = 'outboxd.fanout'
            AND e.id < @seq::bigint AND e.fanned_out_at IS NULL AND coalesce(e.agent_id, '') = @agent_id::text
    )
)::boolean AS pending;

-- name: OrderedLineLock :exec
-- Serialises, across daemons, the transactions that check or advance one ordered
-- line, so a delivery cannot park itself just after the one ahead woke the line.
SELECT pg_advisory_xact_lock(hashtextextended(@line::text, 0));

-- name: OrderedPark :execrows
-- Parks a running ordered delivery until the one ahead wakes it (or until
-- @seconds pass): scheduled, with the attempt it was fetched with given back.
-- River's completion of the snooze that follows then only counts it.
UPDATE outbox.river_job
SET state = 'scheduled', scheduled_at = now() + make_interval(secs => @seconds::float8), attempt = greatest(attempt - 1, 0)
WHERE id = @id AND state = 'running';

-- name: OrderedWakeNext :one
-- Makes the next waiting delivery of the line due after @delay_seconds (0: now),
-- and nudges River's fetchers with the notification an insert would send.
WITH next AS (
    SELECT j.id
    FROM outbox.river_job AS j
    WHERE j.kind = 'outboxd.delivery' AND j.args ? 'seq' AND j.state IN ('available', 'scheduled')
        AND j.args ->> 'subscription_id' = @subscription_id::text
        AND coalesce(j.args ->> 'agent_id', '') = @agent_id::text
        AND (j.args ->> 'seq')::bigint > @seq::bigint
    ORDER BY (j.args ->> 'seq')::bigint
    LIMIT 1
    -- Not SKIP LOCKED: River may be recording the next one's snooze this moment,
    -- and skipping it would wake the one after instead.
    FOR UPDATE
),
woken AS (
    UPDATE outbox.river_job AS j
    SET state = 'available', scheduled_at = now() + make_interval(secs => @delay_seconds::float8)
    FROM next
    WHERE j.id = next.id
    RETURNING j.id, j.queue
)
SELECT count(*)::bigint AS woken, count(pg_notify('outbox.river_insert', json_build_object('queue', woken.queue)::text))::bigint AS notified
FROM woken;

-- name: DeliveryAttemptsSet :exec
-- Writes a delivery's attempt log when the worker completes the job itself.
UPDATE outbox.river_job
SET metadata = metadata || jsonb_build_object('attempts', @attempts::jsonb)
WHERE id = @id AND kind = 'outboxd.delivery';
