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
-- Newest first. The event and subscription filters use River's GIN index on args;
-- organization (the subscription's), agent and type (the event's) join their rows.
SELECT sqlc.embed(d)
FROM outbox.deliveries AS d
LEFT JOIN outbox.subscriptions AS s ON s.id = d.subscription_id
LEFT JOIN outbox.events AS e ON e.event_id = d.event_id
WHERE (sqlc.narg(event_id)::text IS NULL OR d.id IN (
        SELECT j.id FROM outbox.river_job AS j
        WHERE j.kind = 'outboxd.delivery' AND j.args @> jsonb_build_object('event_id', sqlc.narg(event_id)::text)))
    AND (sqlc.narg(subscription_id)::text IS NULL OR d.id IN (
        SELECT j.id FROM outbox.river_job AS j
        WHERE j.kind = 'outboxd.delivery' AND j.args @> jsonb_build_object('subscription_id', sqlc.narg(subscription_id)::text)))
    AND (sqlc.narg(state)::text IS NULL OR d.state = sqlc.narg(state))
    AND (sqlc.narg(organization_id)::text IS NULL OR s.organization_id = sqlc.narg(organization_id))
    AND (sqlc.narg(agent_id)::text IS NULL OR e.agent_id = sqlc.narg(agent_id))
    AND (sqlc.narg(event_type)::text IS NULL OR e.type = sqlc.narg(event_type))
    AND (sqlc.narg(since)::timestamptz IS NULL OR d.created_at >= sqlc.narg(since))
    AND (sqlc.narg(until)::timestamptz IS NULL OR d.created_at < sqlc.narg(until))
    AND (sqlc.narg(before_id)::bigint IS NULL OR d.id < sqlc.narg(before_id))
ORDER BY d.id DESC
LIMIT @max;

-- name: DeliveryGet :one
SELECT * FROM outbox.deliveries WHERE id = @id;

-- name: DeliveryDeadIDs :many
-- Dead deliveries of a subscription that died in [since, until), in id order from
-- after_id, for recovery.
SELECT j.id
FROM outbox.river_job AS j
WHERE j.kind = 'outboxd.delivery'
    AND j.state = 'discarded'
    AND j.args @> jsonb_build_object('subscription_id', @subscription_id::text)
    AND j.finalized_at >= @since
    AND j.finalized_at < @until
    AND j.id > @after_id
ORDER BY j.id
LIMIT @max;

-- name: RecoveryProgressSet :exec
-- A running recovery's progress, merged into its River job's metadata so any
-- daemon (and the River UI) can read it while the job runs.
UPDATE outbox.river_job
SET metadata = metadata || jsonb_build_object('recovery_retried', @retried::bigint, 'recovery_last_id', @last_id::bigint)
WHERE id = @id AND kind = 'outboxd.recover';
