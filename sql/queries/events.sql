-- name: EventInsert :one
-- Publishes an event without an idempotency key: the plain INSERT every producer
-- makes, checked by the table's constraints, with the public id made from the row.
INSERT INTO outbox.events AS e (type, payload, agent_id, organization_id)
VALUES (@type::text, @payload::jsonb, sqlc.narg(agent_id)::text, sqlc.narg(organization_id)::text)
RETURNING sqlc.embed(e), outbox.event_id(e.id, e.created_at)::text AS event_id;

-- name: EventPublish :one
-- Publishes through outbox.publish_event(), which returns the first event for a
-- repeated idempotency key, so Go, SQL and HTTP producers share one idempotency
-- rule. Called in FROM so it runs exactly once.
SELECT e.id, e.type, e.organization_id, e.agent_id, e.payload, e.idempotency_key, e.created_at, e.dispatched_at, e.fanned_out_at,
    coalesce(e.legacy_event_id, outbox.event_id(e.id, e.created_at))::text AS event_id
FROM outbox.publish_event(
    sqlc.arg(type)::text,
    sqlc.arg(payload)::jsonb,
    sqlc.narg(agent_id)::text,
    sqlc.narg(organization_id)::text,
    sqlc.narg(idempotency_key)::text
) AS e;

-- name: EventGetByEventID :one
-- An event by public id: an index probe into the one partition its id names, or,
-- for an event published before ids were derived, a probe of the stored ids.
SELECT e.id, e.type, e.organization_id, e.agent_id, e.payload, e.idempotency_key, e.created_at, e.dispatched_at, e.fanned_out_at,
    coalesce(e.legacy_event_id, outbox.event_id(e.id, e.created_at))::text AS event_id
FROM (
    SELECT * FROM outbox.events AS n
    WHERE n.id = outbox.event_seq(@event_id::text)
        AND n.created_at >= outbox.event_time(@event_id::text)
        AND n.created_at < outbox.event_time(@event_id::text) + interval '1 millisecond'
    UNION ALL
    SELECT o.* FROM outbox.events_legacy_ids AS l
    JOIN outbox.events AS o ON o.id = l.event_seq AND o.created_at = l.event_created_at
    WHERE l.legacy_event_id = @event_id::text
    LIMIT 1
) AS e;

-- name: EventsUndispatchedExist :one
-- Whether any event waits for the relay: an idle relay's look before it opens a
-- claim transaction, one round trip instead of four. Rows another relay holds
-- count too; the claim that follows then finds nothing, which is harmless.
-- Written as min(id) so that the plan always walks the index of undispatched
-- events: for EXISTS, statistics from before a backlog was claimed (all rows
-- undispatched) made Postgres read every partition in full, 14 ms a look during
-- a 40,000-event drain, where the index (its entries for claimed rows marked
-- dead by the first look) answers in under a millisecond.
SELECT (min(id) IS NOT NULL)::boolean AS pending FROM outbox.events WHERE dispatched_at IS NULL;

-- name: EventClaimFanout :many
-- The relay's claim and fan-out in one statement: the oldest undispatched events
-- not locked by another daemon, marked dispatched and fanned out, each with the
-- enabled subscriptions it matches (one row per event and subscription; one row
-- with a NULL subscription for an event that matches none), and whether any
-- subscription orders its deliveries (then the lines of every claimed event's
-- agent must be locked and promoted). SKIP LOCKED lets
-- several daemons claim side by side; claiming by lock rather than by an id offset
-- means an event whose transaction commits late is never skipped. The caller
-- creates the deliveries in the same transaction, so both happen or neither.
-- Subscriptions are found through three indexed paths: agent-scoped,
-- organization-scoped and global.
WITH claimed AS (
    SELECT c.id, c.created_at
    FROM outbox.events AS c
    WHERE c.dispatched_at IS NULL
    ORDER BY c.id
    LIMIT @max
    FOR UPDATE SKIP LOCKED
),
batch AS (
    -- By the array of the claimed ids rather than a join, so each partition is
    -- probed through its primary key whatever the planner thinks of its size;
    -- and by the claimed range of created_at, which lets Postgres skip every
    -- partition outside it when the statement runs. (Not created_at = ANY of
    -- the claimed times: Postgres cannot prune partitions by that, and may
    -- probe the primary key with every pair of the two arrays, 250,000 probes
    -- for 500 events.) Ids are unique, so the range selects nothing more.
    UPDATE outbox.events AS e
    SET dispatched_at = now(), fanned_out_at = now()
    WHERE e.id = ANY(ARRAY(SELECT c.id FROM claimed AS c))
        AND e.created_at >= (SELECT min(c.created_at) FROM claimed AS c)
        AND e.created_at <= (SELECT max(c.created_at) FROM claimed AS c)
    RETURNING e.id, coalesce(e.legacy_event_id, outbox.event_id(e.id, e.created_at)) AS event_id, e.type, e.organization_id, e.agent_id
),
matched AS (
    SELECT b.id AS event_seq, s.id AS subscription_id, s.retry_schedule_ms, s.ordering, s.event_types
    FROM batch AS b
    JOIN outbox.subscriptions AS s ON s.enabled AND s.agent_id = b.agent_id
    WHERE s.organization_id IS NULL OR s.organization_id = b.organization_id
    UNION ALL
    SELECT b.id, s.id, s.retry_schedule_ms, s.ordering, s.event_types
    FROM batch AS b
    JOIN outbox.subscriptions AS s ON s.enabled AND s.agent_id IS NULL AND s.organization_id = b.organization_id
    UNION ALL
    SELECT b.id, s.id, s.retry_schedule_ms, s.ordering, s.event_types
    FROM batch AS b
    CROSS JOIN outbox.subscriptions AS s
    WHERE s.enabled AND s.agent_id IS NULL AND s.organization_id IS NULL
)
SELECT b.id AS event_seq, b.event_id::text AS event_id, b.agent_id,
    coalesce(m.subscription_id, '')::text AS subscription_id, m.retry_schedule_ms, coalesce(m.ordering, 'none')::text AS ordering,
    EXISTS (SELECT 1 FROM outbox.subscriptions AS o WHERE o.ordering = 'agent' AND o.enabled)::boolean AS ordered_any
FROM batch AS b
LEFT JOIN matched AS m ON m.event_seq = b.id AND outbox.event_type_matches(m.event_types, b.type)
ORDER BY b.id, m.subscription_id;

-- name: EventFanout :many
-- Fans out a batch the relay handed to a fan-out job (outboxd before version 10
-- did so for backlogs; the relay now fans out every claim itself): marks it fanned
-- out and returns one row per (event x matching subscription). Rows already marked
-- are skipped, so a fan-out job that runs twice cannot create a second set of
-- deliveries.
WITH batch AS (
    UPDATE outbox.events
    SET fanned_out_at = now()
    WHERE id = ANY(@event_seqs::bigint[]) AND fanned_out_at IS NULL
    RETURNING id, coalesce(legacy_event_id, outbox.event_id(id, created_at)) AS event_id, type, organization_id, agent_id
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
SELECT m.event_seq, m.event_id::text AS event_id, m.agent_id, m.subscription_id, m.retry_schedule_ms, m.ordering
FROM matched AS m
WHERE outbox.event_type_matches(m.event_types, m.type)
ORDER BY m.event_seq, m.subscription_id;

-- name: EventBacklog :one
-- The relay's backlog for metrics, measured on the database's clock: the age in
-- seconds of the oldest event not yet claimed (0 when there is none), and how many
-- there are (capped so the count stays cheap).
SELECT
    coalesce(extract(epoch FROM now() - (SELECT min(created_at) FROM outbox.events WHERE dispatched_at IS NULL)), 0)::float8 AS oldest_age_seconds,
    (SELECT count(*) FROM (SELECT 1 FROM outbox.events WHERE dispatched_at IS NULL LIMIT 100000) AS capped)::bigint AS undispatched;

-- name: Wake :exec
SELECT outbox.wake();

-- name: EventList :many
-- Newest first, by outbox position.
SELECT sqlc.embed(e), coalesce(e.legacy_event_id, outbox.event_id(e.id, e.created_at))::text AS event_id
FROM outbox.events AS e
WHERE (sqlc.narg(organization_id)::text IS NULL OR e.organization_id = sqlc.narg(organization_id))
    AND (sqlc.narg(agent_id)::text IS NULL OR e.agent_id = sqlc.narg(agent_id))
    AND (sqlc.narg(type)::text IS NULL OR e.type = sqlc.narg(type))
    AND (sqlc.narg(before_seq)::bigint IS NULL OR e.id < sqlc.narg(before_seq))
ORDER BY e.id DESC
LIMIT @max;

-- name: EventPartitions :many
-- outbox.events' partitions, oldest first (not the DEFAULT partition).
SELECT c.relname::text AS name,
    ((regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\)'))[1])::timestamptz AS from_time,
    ((regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1])::timestamptz AS to_time
FROM pg_catalog.pg_inherits AS i
JOIN pg_catalog.pg_class AS c ON c.oid = i.inhrelid
WHERE i.inhparent = 'outbox.events'::regclass AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'
ORDER BY from_time;

-- name: EventPartitionsEnsure :many
-- Makes the partitions every moment of [from_time, to_time] needs that are
-- missing, and returns their names.
SELECT p::text AS name FROM outbox.events_partitions_ensure(@from_time::timestamptz, @to_time::timestamptz) AS p;

-- name: EventPartitionBlocked :one
-- What keeps a partition of [from_time, to_time) from being dropped: events not
-- yet claimed, and deliveries not yet final of events created before to_time (the
-- creation time is in every event id). River's state index finds the unfinished
-- deliveries, so this stays cheap however many finished ones there are.
SELECT
    EXISTS (
        SELECT 1 FROM outbox.events AS e
        WHERE e.dispatched_at IS NULL AND e.created_at >= @from_time::timestamptz AND e.created_at < @to_time::timestamptz
    )::boolean AS undispatched,
    (SELECT count(*) FROM outbox.river_job AS j
        WHERE j.state IN ('available', 'pending', 'retryable', 'running', 'scheduled')
            AND j.kind = 'outboxd.delivery'
            AND outbox.event_time(j.args ->> 'event_id') < @to_time::timestamptz)::bigint AS unfinished_deliveries,
    (SELECT count(*) FROM outbox.river_job AS j
        WHERE j.state IN ('available', 'pending', 'retryable', 'running', 'scheduled')
            AND j.kind = 'outboxd.fanout')::bigint AS unfinished_fanouts;

-- name: EventPartitionDrop :exec
-- Drops a day partition and its idempotency keys. The caller sets lock_timeout:
-- dropping takes outbox.events' lock for an instant.
SELECT outbox.events_partition_drop(@name::text);

-- name: EventPartitionDetach :exec
-- Detaches a partition and deletes its idempotency keys: the first of
-- retention's two steps, the one that takes outbox.events' lock (for a change
-- of the catalog only). The caller sets lock_timeout.
SELECT outbox.events_partition_detach(@name::text);

-- name: EventsDetachedDrop :many
-- Drops the partitions detached by EventPartitionDetach, in a transaction of
-- its own that takes no lock producers wait for.
SELECT name::text FROM outbox.events_detached_drop() AS name;

-- name: LockTimeoutSet :exec
SELECT set_config('lock_timeout', @timeout::text, true);

-- name: EventsPruneDefault :execrows
-- Retention for the DEFAULT partition, which cannot be dropped (it holds only
-- events whose day had no partition: backdated, or published while no daemon ran
-- for days): deletes up to @max of its events created before @before whose
-- deliveries are all final (delivered, dead or cancelled), oldest first, with
-- their idempotency keys. Events still waiting for the relay or with a delivery
-- in progress are kept, however old.
WITH gone AS (
    DELETE FROM outbox.events_default AS e
    WHERE e.id IN (
        SELECT old.id
        FROM outbox.events_default AS old
        WHERE old.created_at < @before::timestamptz
            AND old.fanned_out_at IS NOT NULL
            AND NOT EXISTS (
                SELECT 1 FROM outbox.river_job AS j
                WHERE j.kind = 'outboxd.delivery'
                    AND j.args ->> 'event_id' = coalesce(old.legacy_event_id, outbox.event_id(old.id, old.created_at))
                    AND j.state NOT IN ('completed', 'discarded', 'cancelled')
            )
        ORDER BY old.id
        LIMIT @max
    )
    RETURNING e.organization_id, e.idempotency_key, e.legacy_event_id
),
legacy AS (
    DELETE FROM outbox.events_legacy_ids AS l
    USING gone AS g
    WHERE l.legacy_event_id = g.legacy_event_id
),
keys AS (
    DELETE FROM outbox.event_idempotency AS k
    USING gone AS g
    WHERE g.idempotency_key IS NOT NULL AND k.idempotency_key = g.idempotency_key
        AND k.organization_id IS NOT DISTINCT FROM g.organization_id
)
SELECT 1 FROM gone;

-- name: RetentionDue :one
-- Whether retention has work: an event created before @before (the oldest by
-- position, which follows creation: one index probe per partition), or no
-- partition reaching past @until yet.
SELECT (
    coalesce((SELECT e.created_at < @before::timestamptz FROM outbox.events AS e ORDER BY e.id LIMIT 1), false)
    OR NOT EXISTS (
        SELECT 1
        FROM pg_catalog.pg_inherits AS i
        JOIN pg_catalog.pg_class AS c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'outbox.events'::regclass AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'
            AND ((regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1])::timestamptz > @until::timestamptz)
)::boolean AS due;
