-- name: DeliveryTargets :many
-- Everything the attempts of many deliveries need, in one round trip: for each
-- (event, subscription) the subscription, the event (empty columns when it no
-- longer exists) and the secrets that sign right now. The delivery worker
-- gathers the attempts that start while a lookup is under way and loads them
-- together. n is each request's position (1-based) in the arrays; a request
-- whose subscription no longer exists has no row.
SELECT
    r.n::integer AS n,
    s.id AS subscription_id,
    s.url,
    s.enabled,
    s.headers,
    s.headers_key_id,
    s.headers_ciphertext,
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
    -- The event's columns, empty when it no longer exists (event_found false).
    (e.id IS NOT NULL)::boolean AS event_found,
    coalesce(e.id, 0)::bigint AS event_seq,
    coalesce(e.legacy_event_id, outbox.event_id(e.id, e.created_at), '')::text AS event_id,
    coalesce(e.type, '')::text AS type,
    coalesce(e.organization_id, '')::text AS organization_id,
    coalesce(e.agent_id, '')::text AS agent_id,
    coalesce(e.payload, '{}')::jsonb AS payload,
    coalesce(e.created_at, '1970-01-01 00:00:00+00')::timestamptz AS created_at,
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
FROM unnest(@event_ids::text[]) WITH ORDINALITY AS r(event_id, n)
-- Each id is read once (OFFSET 0 keeps the subquery from being folded into
-- the lookup below, where every partition's probe would read it again).
CROSS JOIN LATERAL (
    SELECT outbox.event_seq(r.event_id) AS seq, outbox.event_time(r.event_id) AS at OFFSET 0
) AS k
JOIN outbox.subscriptions AS s ON s.id = (@subscription_ids::text[])[r.n]
LEFT JOIN LATERAL (
    SELECT * FROM outbox.events AS n
    WHERE n.id = k.seq
        AND n.created_at >= k.at
        AND n.created_at < k.at + interval '1 millisecond'
    UNION ALL
    SELECT o.* FROM outbox.events_legacy_ids AS l
    JOIN outbox.events AS o ON o.id = l.event_seq AND o.created_at = l.event_created_at
    WHERE l.legacy_event_id = r.event_id
    LIMIT 1
) AS e ON true;

-- name: DeliveryList :many
-- Newest first. The filters run on River's job rows: the subscription (migration
-- 5) and the agent (migration 13) have indexes that walk their deliveries newest
-- first; the event has its own index (migration 14); organization is the
-- subscription's, type the event's.
SELECT sqlc.embed(d)
FROM outbox.deliveries AS d
WHERE d.id IN (
    SELECT j.id
    FROM outbox.river_job AS j
    WHERE j.kind = 'outboxd.delivery'
        AND (sqlc.narg(event_id)::text IS NULL OR j.args ->> 'event_id' = sqlc.narg(event_id))
        AND (sqlc.narg(subscription_id)::text IS NULL OR j.args ->> 'subscription_id' = sqlc.narg(subscription_id))
        -- The fan-out writes the event's agent into every delivery's args (migration
        -- 14 wrote it into older ones), and an index walks one agent's deliveries
        -- newest first: looking each delivery's event up instead took seconds.
        AND (sqlc.narg(agent_id)::text IS NULL OR j.args ->> 'agent_id' = sqlc.narg(agent_id))
        AND (sqlc.narg(organization_id)::text IS NULL OR j.args ->> 'subscription_id' IN (
            SELECT s.id FROM outbox.subscriptions AS s WHERE s.organization_id = sqlc.narg(organization_id)))
        -- Two lookups, not one with OR: an OR of the id probe and the legacy ids
        -- made Postgres scan a whole partition of events for every delivery.
        AND (sqlc.narg(event_type)::text IS NULL
            OR EXISTS (
                SELECT 1 FROM outbox.events AS e
                WHERE e.id = outbox.event_seq(j.args ->> 'event_id')
                    AND e.created_at >= outbox.event_time(j.args ->> 'event_id')
                    AND e.created_at < outbox.event_time(j.args ->> 'event_id') + interval '1 millisecond'
                    AND e.type = sqlc.narg(event_type))
            OR EXISTS (
                SELECT 1 FROM outbox.events_legacy_ids AS l
                JOIN outbox.events AS e ON e.id = l.event_seq AND e.created_at = l.event_created_at
                WHERE l.legacy_event_id = j.args ->> 'event_id' AND e.type = sqlc.narg(event_type)))
        AND (sqlc.narg(state)::text IS NULL OR (CASE
            WHEN j.state = 'completed' THEN 'delivered'
            WHEN j.state = 'discarded' THEN 'dead'
            WHEN j.state = 'cancelled' THEN 'cancelled'
            WHEN j.state = 'running' THEN 'delivering'
            WHEN j.state = 'pending' THEN 'pending'
            WHEN j.attempt > 0 THEN 'retrying'
            ELSE 'pending'
        END) = sqlc.narg(state))
        -- The same, said so that the planner can walk migration 13's index of
        -- ended deliveries newest first (a custom plan folds the other branch).
        AND (sqlc.narg(state)::text IS DISTINCT FROM 'dead' OR j.state = 'discarded')
        AND (sqlc.narg(state)::text IS DISTINCT FROM 'cancelled' OR j.state = 'cancelled')
        AND (sqlc.narg(since)::timestamptz IS NULL OR j.created_at >= sqlc.narg(since))
        AND (sqlc.narg(until)::timestamptz IS NULL OR j.created_at < sqlc.narg(until))
        AND (sqlc.narg(before_id)::bigint IS NULL OR j.id < sqlc.narg(before_id))
        -- since and until as ids (JobIDAt), so the walk stops where they end.
        AND (sqlc.narg(min_id)::bigint IS NULL OR j.id >= sqlc.narg(min_id))
    ORDER BY j.id DESC
    LIMIT @max
)
ORDER BY d.id DESC;

-- name: DeliveryGet :one
SELECT * FROM outbox.deliveries WHERE id = @id;

-- name: DeliveryFailedIDs :many
-- Deliveries of a subscription that ended dead or cancelled (the subscription was
-- disabled) in [since, until), in id order from after_id, for recovery; ordered
-- ones go back to their lines rather than straight to the queue.
SELECT j.id, (j.args ? 'seq')::boolean AS ordered
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
SELECT e.id AS event_seq, coalesce(e.legacy_event_id, outbox.event_id(e.id, e.created_at))::text AS event_id,
    e.agent_id, s.retry_schedule_ms, s.ordering
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
            AND j.args ->> 'event_id' = coalesce(e.legacy_event_id, outbox.event_id(e.id, e.created_at))
            AND j.args ->> 'subscription_id' = s.id)
ORDER BY e.id
LIMIT @max;

-- name: DeliveryLeaseTake :one
-- One of the subscription's max_in_flight slots for this attempt (true), or none
-- free (false). True also when the subscription sets no cap.
SELECT outbox.delivery_lease_take(@subscription_id::text, @job_id::bigint, make_interval(secs => @lease_seconds::float8))::boolean AS taken;

-- name: DeliveryLeaseRelease :exec
DELETE FROM outbox.delivery_leases WHERE job_id = @job_id;

-- name: DeliveriesAnnounce :exec
-- Tells River's producers of @queue that jobs are due, when the transaction
-- commits. River's own insert notification sends at most one per queue per
-- FetchCooldown from each client, so a claim committed just after another one
-- may announce nothing, and its deliveries would wait for the next fetch poll.
SELECT pg_notify('outbox.river_insert', json_build_object('queue', @queue::text)::text);
