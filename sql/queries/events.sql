-- name: EventPublish :one
-- Publishes through outbox.publish_event() so Go, SQL and HTTP producers share one
-- set of checks and one idempotency rule. Called in FROM so it runs exactly once.
SELECT *
FROM outbox.publish_event(
    sqlc.arg(type)::text,
    sqlc.arg(payload)::jsonb,
    sqlc.narg(agent_id)::text,
    sqlc.narg(organization_id)::text,
    sqlc.narg(idempotency_key)::text
);

-- name: EventGetByEventID :one
SELECT * FROM outbox.events WHERE event_id = @event_id;

-- name: EventClaimBatch :many
-- The relay's claim: the oldest undispatched events not locked by another daemon.
-- SKIP LOCKED lets several daemons claim side by side; claiming by lock rather than
-- by an id offset means an event whose transaction commits late is never skipped.
WITH claimed AS (
    SELECT id
    FROM outbox.events
    WHERE dispatched_at IS NULL
    ORDER BY id
    LIMIT @max
    FOR UPDATE SKIP LOCKED
)
UPDATE outbox.events AS e
SET dispatched_at = now()
FROM claimed
WHERE e.id = claimed.id
RETURNING e.id;

-- name: EventFanout :many
-- Marks a claimed batch fanned out and returns one row per (event x matching
-- subscription). Rows already marked are skipped, so a fan-out job that runs twice
-- (rescued while its first run still held the transaction open) cannot create a
-- second set of deliveries. Subscriptions are found through three indexed paths:
-- agent-scoped, organization-scoped and global.
WITH batch AS (
    UPDATE outbox.events
    SET fanned_out_at = now()
    WHERE id = ANY(@event_seqs::bigint[]) AND fanned_out_at IS NULL
    RETURNING id, event_id, type, organization_id, agent_id
),
matched AS (
    SELECT b.id AS event_seq, b.event_id, b.agent_id, s.id AS subscription_id, s.retry_schedule_ms, s.ordering, s.event_types, b.type
    FROM batch AS b
    JOIN outbox.subscriptions AS s ON s.enabled AND s.agent_id = b.agent_id
    WHERE s.organization_id IS NULL OR s.organization_id = b.organization_id
    UNION ALL
    SELECT b.id, b.event_id, b.agent_id, s.id, s.retry_schedule_ms, s.ordering, s.event_types, b.type
    FROM batch AS b
    JOIN outbox.subscriptions AS s ON s.enabled AND s.agent_id IS NULL AND s.organization_id = b.organization_id
    UNION ALL
    SELECT b.id, b.event_id, b.agent_id, s.id, s.retry_schedule_ms, s.ordering, s.event_types, b.type
    FROM batch AS b
    CROSS JOIN outbox.subscriptions AS s
    WHERE s.enabled AND s.agent_id IS NULL AND s.organization_id IS NULL
)
SELECT m.event_seq, m.event_id, m.agent_id, m.subscription_id, m.retry_schedule_ms, m.ordering
FROM matched AS m
WHERE outbox.event_type_matches(m.event_types, m.type)
ORDER BY m.event_seq, m.subscription_id;

-- name: EventBacklog :one
-- The relay's backlog for metrics, measured on the database's clock: the age in
-- seconds of the oldest event not yet handed to a fan-out job (0 when there is
-- none), and how many there are (capped so the count stays cheap).
SELECT
    coalesce(extract(epoch FROM now() - (SELECT min(created_at) FROM outbox.events WHERE dispatched_at IS NULL)), 0)::float8 AS oldest_age_seconds,
    (SELECT count(*) FROM (SELECT 1 FROM outbox.events WHERE dispatched_at IS NULL LIMIT 100000) AS capped)::bigint AS undispatched;

-- name: Wake :exec
SELECT outbox.wake();

-- name: EventList :many
-- Newest first, by outbox position.
SELECT *
FROM outbox.events
WHERE (sqlc.narg(organization_id)::text IS NULL OR organization_id = sqlc.narg(organization_id))
    AND (sqlc.narg(agent_id)::text IS NULL OR agent_id = sqlc.narg(agent_id))
    AND (sqlc.narg(type)::text IS NULL OR type = sqlc.narg(type))
    AND (sqlc.narg(before_seq)::bigint IS NULL OR id < sqlc.narg(before_seq))
ORDER BY id DESC
LIMIT @max;

-- name: EventsPruneDue :one
-- Whether the oldest event (by position, which follows creation) was created
-- before @before: if not, a prune has nothing to look at. One index probe.
SELECT coalesce((SELECT e.created_at < @before FROM outbox.events AS e ORDER BY e.id LIMIT 1), false)::boolean AS due;

-- name: EventsPrune :execrows
-- Retention: deletes up to @max events created before @before whose deliveries
-- are all final (delivered, dead or cancelled), oldest first. Events still waiting
-- for the relay or with a delivery in progress are kept, however old.
DELETE FROM outbox.events AS e
WHERE e.id IN (
    SELECT old.id
    FROM outbox.events AS old
    WHERE old.created_at < @before
        AND old.fanned_out_at IS NOT NULL
        AND NOT EXISTS (
            SELECT 1 FROM outbox.river_job AS j
            WHERE j.kind = 'outboxd.delivery'
                AND j.args @> jsonb_build_object('event_id', old.event_id)
                AND j.state NOT IN ('completed', 'discarded', 'cancelled')
        )
    ORDER BY old.id
    LIMIT @max
);
