-- name: SubscriptionInsert :one
INSERT INTO outbox.subscriptions (organization_id, agent_id, url, event_types, description, headers, retry_schedule_ms)
VALUES (
    sqlc.narg(organization_id),
    sqlc.narg(agent_id),
    @url,
    @event_types::text[],
    @description,
    @headers::jsonb,
    sqlc.narg(retry_schedule_ms)::bigint[]
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
