-- name: JobCountsByQueueState :many
-- River jobs by queue and state, for metrics. Completed jobs are pruned after the
-- retention period, so the scan stays bounded.
SELECT queue, state::text AS state, count(*)::bigint AS jobs
FROM outbox.river_job
GROUP BY queue, state
ORDER BY queue, state;

-- name: SubscriptionHealth :one
-- Disabled subscriptions, and secrets that stop signing within the next day (old
-- secrets in a rotation's grace period).
SELECT
    (SELECT count(*) FROM outbox.subscriptions WHERE NOT enabled)::bigint AS disabled,
    (SELECT count(*) FROM outbox.subscription_secrets
        WHERE expires_at > now() AND expires_at <= now() + interval '24 hours')::bigint AS secrets_expiring;

-- name: JobCountsUnfinished :many
-- River jobs not finished yet, by queue and state: the work ahead, which an
-- operator watches. Only these states are counted, through River's fetching
-- index on (state, queue, …), so the count stays cheap however many finished
-- jobs the retention keeps.
SELECT queue, state::text AS state, count(*)::bigint AS jobs
FROM outbox.river_job
WHERE state IN ('available', 'pending', 'retryable', 'running', 'scheduled')
GROUP BY queue, state
ORDER BY queue, state;
