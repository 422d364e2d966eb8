-- A delivered delivery has no last error: River's errors array still holds the
-- errors of the attempts that failed before it got through, and the view showed
-- the latest of them as if the delivery were failing. Each attempt, failed or
-- not, stays in attempt_log. The columns are migration 6's, in the same order.
CREATE OR REPLACE VIEW outbox.deliveries AS
SELECT
    j.id,
    (j.args ->> 'event_id')::text AS event_id,
    (j.args ->> 'subscription_id')::text AS subscription_id,
    (CASE
        WHEN j.state = 'completed' THEN 'delivered'
        WHEN j.state = 'discarded' THEN 'dead'
        WHEN j.state = 'cancelled' THEN 'cancelled'
        WHEN j.state = 'running' THEN 'delivering'
        WHEN j.state = 'pending' THEN 'pending'
        WHEN j.attempt > 0 THEN 'retrying'
        ELSE 'pending'
    END)::text AS state,
    j.attempt::integer AS attempts,
    j.max_attempts::integer AS max_attempts,
    (j.metadata -> 'attempts' -> -1 ->> 'status_code')::integer AS last_status_code,
    (CASE WHEN j.state <> 'completed' THEN j.errors[cardinality(j.errors)] ->> 'error' END)::text AS last_error,
    j.created_at,
    (CASE WHEN j.state = 'completed' THEN j.finalized_at END)::timestamptz AS delivered_at,
    (CASE WHEN j.state IN ('available', 'scheduled', 'retryable') THEN j.scheduled_at END)::timestamptz AS next_attempt_at,
    j.finalized_at,
    coalesce(j.metadata -> 'attempts', '[]'::jsonb)::jsonb AS attempt_log
FROM outbox.river_job AS j
WHERE j.kind = 'outboxd.delivery';
