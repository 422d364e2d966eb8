-- name: SubscriptionInsert :one
INSERT INTO outbox.subscriptions (organization_id, agent_id, url, event_types, description, headers, retry_schedule_ms, agent_webhook, rate_limit_per_second)
VALUES (
    sqlc.narg(organization_id),
    sqlc.narg(agent_id),
    @url,
    @event_types::text[],
    @description,
    @headers::jsonb,
    sqlc.narg(retry_schedule_ms)::bigint[],
    @agent_webhook,
    sqlc.narg(rate_limit_per_second)::integer
)
RETURNING *;

-- name: SubscriptionSecretInsert :exec
INSERT INTO outbox.subscription_secrets (subscription_id, key_id, ciphertext, expires_at)
VALUES (@subscription_id, @key_id, @ciphertext, sqlc.narg(expires_at));

-- name: SubscriptionGet :one
SELECT * FROM outbox.subscriptions WHERE id = @id;

-- name: SubscriptionList :many
SELECT *
FROM outbox.subscriptions
WHERE (sqlc.narg(agent_id)::text IS NULL OR agent_id = sqlc.narg(agent_id))
    AND (sqlc.narg(organization_id)::text IS NULL OR organization_id = sqlc.narg(organization_id))
    AND (sqlc.narg(enabled)::boolean IS NULL OR enabled = sqlc.narg(enabled))
    AND id > @after
ORDER BY id
LIMIT @max;

-- name: SubscriptionDelete :execrows
DELETE FROM outbox.subscriptions WHERE id = @id;

-- name: SubscriptionDisable :execrows
UPDATE outbox.subscriptions
SET enabled = false, disabled_reason = @reason, disabled_at = now(), updated_at = now()
WHERE id = @id AND enabled;

-- name: SubscriptionGetForUpdate :one
SELECT * FROM outbox.subscriptions WHERE id = @id FOR UPDATE;

-- name: SubscriptionUpdate :one
-- Writes every editable field; the caller merges a partial update into the current
-- row (read FOR UPDATE in the same transaction) first.
UPDATE outbox.subscriptions
SET url = @url,
    event_types = @event_types::text[],
    description = @description,
    headers = @headers::jsonb,
    retry_schedule_ms = sqlc.narg(retry_schedule_ms)::bigint[],
    rate_limit_per_second = sqlc.narg(rate_limit_per_second)::integer,
    updated_at = now()
WHERE id = @id
RETURNING *;

-- name: SubscriptionEnable :execrows
UPDATE outbox.subscriptions
SET enabled = true, disabled_reason = NULL, disabled_at = NULL, updated_at = now()
WHERE id = @id AND NOT enabled;

-- name: AgentWebhookGet :one
SELECT * FROM outbox.subscriptions WHERE agent_id = @agent_id AND agent_webhook;

-- name: AgentWebhookSecretsExpire :exec
-- Replacing an agent's webhook secret ends the old ones at once (a rotation with a
-- grace period is POST /v1/subscriptions/{id}/secret/rotate).
UPDATE outbox.subscription_secrets
SET expires_at = now()
WHERE subscription_id = @subscription_id AND (expires_at IS NULL OR expires_at > now());

-- name: SecretRotateExpireCurrent :execrows
-- A rotation's old secrets keep signing until @expires_at (never longer than they
-- already would).
UPDATE outbox.subscription_secrets
SET expires_at = least(coalesce(expires_at, 'infinity'::timestamptz), @expires_at::timestamptz)
WHERE subscription_id = @subscription_id AND (expires_at IS NULL OR expires_at > now());

-- name: SecretRotatePrune :exec
-- Secrets that stopped signing over a week ago are of no further use.
DELETE FROM outbox.subscription_secrets
WHERE subscription_id = @subscription_id AND expires_at < now() - interval '7 days';

-- name: RateLimitTake :one
-- Takes one delivery slot of a rate-limited subscription, or says how long to
-- wait for one. Concurrent takers serialise on the row lock, across daemons.
WITH s AS (
    SELECT sub.id, sub.rate_limit_per_second AS rate,
        greatest(coalesce(sub.rate_tat, now()), now()) AS tat
    FROM outbox.subscriptions AS sub
    WHERE sub.id = @subscription_id AND sub.rate_limit_per_second IS NOT NULL
    FOR UPDATE
),
taken AS (
    UPDATE outbox.subscriptions AS t
    SET rate_tat = s.tat + make_interval(secs => 1.0 / s.rate)
    FROM s
    WHERE t.id = s.id AND s.tat - now() <= make_interval(secs => 0.5 / s.rate)
    RETURNING t.id
)
SELECT
    EXISTS (SELECT 1 FROM taken) AS allowed,
    coalesce((SELECT extract(epoch FROM s.tat - now() - make_interval(secs => 0.5 / s.rate)) FROM s), 0)::float8 AS wait_seconds;
