-- name: DaemonRegister :exec
-- A daemon starting, or coming back after it was presumed dead.
INSERT INTO outbox.daemons AS d (id, hostname, pid, version)
VALUES (@id, @hostname, @pid, @version)
ON CONFLICT (id) DO UPDATE
SET heartbeat_at = now(), stopped_at = NULL, stop_reason = NULL,
    hostname = excluded.hostname, pid = excluded.pid, version = excluded.version;

-- name: DaemonHeartbeat :execrows
-- Zero rows when the daemon is no longer registered as alive: the others
-- presumed it dead and took its jobs over.
UPDATE outbox.daemons SET heartbeat_at = now() WHERE id = @id AND stopped_at IS NULL;

-- name: DaemonStop :exec
UPDATE outbox.daemons SET stopped_at = now(), stop_reason = 'stopped' WHERE id = @id AND stopped_at IS NULL;

-- name: DaemonTakeOver :one
-- Marks daemons whose heartbeat is older than @dead_after_seconds dead and puts
-- the jobs they were running back in the queue, as River's rescuer would but at
-- once: a job with attempts left is due now (River's fetchers hear of it as of an
-- insert), one without is discarded. Two daemons running this at once do not
-- both take one over: the first holds the dead daemon's row. It also forgets
-- daemons stopped more than a day ago (kept that long for the record), in the
-- same round trip.
WITH forgotten AS (
    DELETE FROM outbox.daemons WHERE stopped_at < now() - interval '1 day'
),
dead AS (
    UPDATE outbox.daemons AS d
    SET stopped_at = now(),
        stop_reason = 'no heartbeat since ' || to_char(d.heartbeat_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') || '; its jobs were taken over'
    WHERE d.stopped_at IS NULL
        AND d.heartbeat_at < now() - make_interval(secs => @dead_after_seconds::float8)
        AND d.id <> @self::text
    RETURNING d.id, d.heartbeat_at
),
taken AS (
    UPDATE outbox.river_job AS j
    SET state = (CASE WHEN j.attempt >= j.max_attempts THEN 'discarded' ELSE 'available' END)::outbox.river_job_state,
        scheduled_at = now(),
        finalized_at = CASE WHEN j.attempt >= j.max_attempts THEN now() END,
        errors = array_append(j.errors, jsonb_build_object(
            'at', now(),
            'attempt', j.attempt,
            'error', 'daemon ' || dead.id || ' stopped (no heartbeat since ' || dead.heartbeat_at || ') while running this job; taken over',
            'trace', '')),
        metadata = j.metadata || jsonb_build_object('outboxd:taken_over_from', dead.id)
    FROM dead
    WHERE j.state = 'running' AND j.attempted_by[cardinality(j.attempted_by)] = dead.id
    RETURNING j.id, j.queue, j.state
)
SELECT
    coalesce((SELECT array_agg(dead.id ORDER BY dead.id) FROM dead), '{}')::text[] AS daemons,
    (SELECT count(*) FROM taken)::bigint AS jobs,
    (SELECT count(pg_notify('outbox.river_insert', json_build_object('queue', q.queue)::text))
        FROM (SELECT DISTINCT t.queue FROM taken AS t WHERE t.state = 'available') AS q)::bigint AS notified;

-- name: DaemonList :many
-- Daemons that ran recently, the live ones first.
SELECT * FROM outbox.daemons
WHERE stopped_at IS NULL OR stopped_at > now() - interval '1 day'
ORDER BY stopped_at IS NOT NULL, started_at;
