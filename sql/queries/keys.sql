-- name: SecretsToReseal :many
-- A batch of secrets sealed under another key than the current one, locked so that
-- two rotations (or a rotation and a secret rotation) never reseal one row twice.
SELECT id, subscription_id, key_id, ciphertext
FROM outbox.subscription_secrets
WHERE key_id <> @current_key_id
ORDER BY id
LIMIT @max
FOR UPDATE SKIP LOCKED;

-- name: SecretReseal :exec
UPDATE outbox.subscription_secrets SET key_id = @key_id, ciphertext = @ciphertext WHERE id = @id;

-- name: SecretsCountByKey :many
SELECT key_id, count(*)::bigint AS secrets
FROM outbox.subscription_secrets
GROUP BY key_id
ORDER BY key_id;
