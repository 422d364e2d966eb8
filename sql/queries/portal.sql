-- name: PortalSessionInsert :one
INSERT INTO outbox.portal_sessions (organization_id, agent_id, link_digest, created_by, expires_at)
VALUES (@organization_id, sqlc.narg(agent_id), @link_digest, @created_by,
    now() + make_interval(secs => @expires_in_seconds::double precision))
RETURNING *;

-- name: PortalSessionSweep :execrows
-- Deletes portal sessions that ended (expired or revoked) more than a day ago;
-- run when a link is made, so the table stays as small as the sessions in use.
DELETE FROM outbox.portal_sessions
WHERE expires_at < now() - interval '1 day' OR revoked_at < now() - interval '1 day';

-- name: PortalSessionOpen :one
-- Exchanges a link's token, once, for a browser session that sees the link's
-- organization (and agent) and ends when the portal session does. A link that
-- was opened, revoked or has expired matches nothing. The UPDATE's row lock
-- makes two concurrent opens of one link start one session.
WITH ids AS MATERIALIZED (
    SELECT outbox.new_id('ses_') AS web_session_id
),
opened AS (
    UPDATE outbox.portal_sessions AS p
    SET opened_at = now(), web_session_id = ids.web_session_id
    FROM ids
    WHERE p.link_digest = @link_digest AND p.opened_at IS NULL AND p.revoked_at IS NULL AND p.expires_at > now()
    RETURNING p.*
),
started AS (
    INSERT INTO outbox.web_sessions (id, organization_id, agent_id, token_digest, user_agent, expires_at)
    SELECT opened.web_session_id, opened.organization_id, opened.agent_id, @token_digest, @user_agent, opened.expires_at
    FROM opened
    RETURNING id
)
SELECT opened.*
FROM opened
JOIN started ON started.id = opened.web_session_id;

-- name: PortalSessionGet :one
SELECT * FROM outbox.portal_sessions WHERE id = @id;

-- name: PortalSessionByWebSession :one
SELECT * FROM outbox.portal_sessions WHERE web_session_id = @web_session_id;

-- name: PortalSessionList :many
-- Newest first, keyset-paged by id; ended ones only when asked for.
SELECT *
FROM outbox.portal_sessions
WHERE (sqlc.narg(organization_id)::text IS NULL OR organization_id = sqlc.narg(organization_id))
    AND (@include_ended::boolean OR (revoked_at IS NULL AND expires_at > now()))
    AND (@before::text = '' OR id < @before)
ORDER BY id DESC
LIMIT @max;

-- name: PortalSessionRevoke :one
-- Ends a portal session: its link no longer opens, and the browser session it
-- started is signed out. Revoking an ended one changes nothing.
WITH revoked AS (
    UPDATE outbox.portal_sessions AS p
    SET revoked_at = coalesce(p.revoked_at, now())
    WHERE p.id = @id
    RETURNING p.*
),
signed_out AS (
    UPDATE outbox.web_sessions AS w
    SET revoked_at = now()
    FROM revoked
    WHERE w.id = revoked.web_session_id AND w.revoked_at IS NULL
    RETURNING w.id
)
SELECT revoked.* FROM revoked;

-- name: SubscriptionStats :many
-- For each subscription, its deliveries created in the last 24 hours, at most
-- @sample of the newest (from @min_id, JobIDAt a day ago): counts by outcome and the median duration of the
-- delivering attempt. Each walks the subscription's delivery index newest
-- first, so a page of endpoints costs at most (endpoints x sample) rows,
-- however long the delivery log is.
SELECT
    s.id::text AS subscription_id,
    count(j.id)::bigint AS total,
    count(j.id) FILTER (WHERE j.state = 'completed')::bigint AS delivered,
    count(j.id) FILTER (WHERE j.state = 'discarded')::bigint AS dead,
    count(j.id) FILTER (WHERE j.state IN ('retryable', 'scheduled', 'available') AND j.attempt > 0)::bigint AS retrying,
    coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY (j.metadata -> 'attempts' -> -1 ->> 'duration_ms')::float8)
        FILTER (WHERE j.state = 'completed'), 0)::float8 AS p50_ms
FROM unnest(@subscription_ids::text[]) AS s(id)
LEFT JOIN LATERAL (
    SELECT r.id, r.state, r.attempt, r.metadata
    FROM outbox.river_job AS r
    WHERE r.kind = 'outboxd.delivery'
        AND r.args ->> 'subscription_id' = s.id
        AND r.id >= @min_id::bigint
        AND r.created_at >= now() - interval '24 hours'
    ORDER BY r.id DESC
    LIMIT @sample
) AS j ON true
GROUP BY s.id;

-- name: SubscriptionHourly :many
-- A subscription's deliveries created in the last 24 hours (at most @sample of
-- the newest), by hour and outcome, for the endpoint's chart.
SELECT
    date_bin('1 hour', j.created_at, '2000-01-01 00:00:00+00')::timestamptz AS hour,
    count(*) FILTER (WHERE j.state = 'completed')::bigint AS delivered,
    count(*) FILTER (WHERE j.state = 'discarded' OR (j.state IN ('retryable', 'scheduled', 'available') AND j.attempt > 0))::bigint AS failed,
    count(*) FILTER (WHERE j.state = 'cancelled')::bigint AS cancelled,
    count(*) FILTER (WHERE j.state IN ('pending', 'running') OR (j.state IN ('scheduled', 'available') AND j.attempt = 0))::bigint AS pending
FROM (
    SELECT r.created_at, r.state, r.attempt
    FROM outbox.river_job AS r
    WHERE r.kind = 'outboxd.delivery'
        AND r.args ->> 'subscription_id' = @subscription_id::text
        AND r.id >= @min_id::bigint
        AND r.created_at >= now() - interval '24 hours'
    ORDER BY r.id DESC
    LIMIT @sample
) AS j
GROUP BY 1
ORDER BY 1;

-- name: EventTypesLastSeen :many
-- When each type was last published, for one organization (or all), among the
-- newest @sample events of the last 7 days, whatever their organization: the
-- organization filters that sample, so the page reads at most @sample rows even
-- for an organization that publishes seldom (whose types may then show as not
-- seen lately).
SELECT e.type, max(e.created_at)::timestamptz AS last_seen
FROM (
    SELECT n.type, n.created_at, n.organization_id
    FROM outbox.events AS n
    WHERE n.created_at >= now() - interval '7 days'
    ORDER BY n.id DESC
    LIMIT @sample
) AS e
WHERE sqlc.narg(organization_id)::text IS NULL OR e.organization_id = sqlc.narg(organization_id)
GROUP BY e.type;

-- name: DeliveryRates :one
-- Deliveries that ended in the last @window_seconds, by outcome, through
-- River's (state, finalized_at) index.
SELECT
    count(*) FILTER (WHERE state = 'completed')::bigint AS delivered,
    count(*) FILTER (WHERE state = 'discarded')::bigint AS dead,
    count(*) FILTER (WHERE state = 'cancelled')::bigint AS cancelled
FROM outbox.river_job
WHERE kind = 'outboxd.delivery'
    AND state IN ('completed', 'discarded', 'cancelled')
    AND finalized_at >= now() - make_interval(secs => @window_seconds::float8);

-- name: RetryingDeliveries :one
SELECT count(*)::bigint AS retrying
FROM outbox.river_job
WHERE kind = 'outboxd.delivery' AND state IN ('retryable', 'scheduled') AND attempt > 0;

-- name: SubscriptionsTroubled :many
-- Subscriptions that are disabled, have an open circuit or are failing, for
-- operators: the worst first.
SELECT *
FROM outbox.subscriptions
WHERE NOT enabled OR circuit_open_until IS NOT NULL OR failure_streak > 0
ORDER BY enabled, failure_streak DESC, id
LIMIT @max;

-- name: JobIDAt :one
-- The first id from which River's jobs were created at or after @at, found by
-- bisecting the primary key (a few dozen index probes), because ids grow with
-- creation time and created_at has no index of its own. Callers widen @at by a
-- margin for jobs committed out of order and keep their exact time filter: the
-- id only stops their index walks where the time range ends.
WITH RECURSIVE span (lo, hi) AS (
    SELECT coalesce((SELECT min(id) FROM outbox.river_job), 1)::bigint,
        (coalesce((SELECT max(id) FROM outbox.river_job), 0) + 1)::bigint
    UNION ALL
    SELECT
        (CASE WHEN coalesce(probe.created_at < @at::timestamptz, false) THEN (s.lo + s.hi) / 2 + 1 ELSE s.lo END)::bigint,
        (CASE WHEN coalesce(probe.created_at < @at::timestamptz, false) THEN s.hi ELSE (s.lo + s.hi) / 2 END)::bigint
    FROM span AS s
    LEFT JOIN LATERAL (
        SELECT j.created_at FROM outbox.river_job AS j WHERE j.id >= (s.lo + s.hi) / 2 ORDER BY j.id LIMIT 1
    ) AS probe ON true
    WHERE s.lo < s.hi
)
SELECT max(span.lo)::bigint AS id FROM span;
