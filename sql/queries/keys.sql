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

-- name: HeadersToReseal :many
-- A batch of subscriptions whose custom header values are sealed under another
-- key than the current one, or still in plaintext from before migration 7.
SELECT id, headers, headers_key_id, headers_ciphertext
FROM outbox.subscriptions
WHERE headers <> '{}' OR headers_key_id <> @current_key_id::text
ORDER BY id
LIMIT @max
FOR UPDATE SKIP LOCKED;

-- name: HeadersCountByKey :many
-- Subscriptions with custom header values, by the key that sealed them; an
-- empty key id counts those still in plaintext (which win over a ciphertext).
SELECT (CASE WHEN headers <> '{}' THEN '' ELSE headers_key_id END)::text AS key_id, count(*)::bigint AS subscriptions
FROM outbox.subscriptions
WHERE headers_key_id IS NOT NULL OR headers <> '{}'
GROUP BY 1
ORDER BY 1;

-- name: HeadersPlaintextToSeal :many
-- A batch of subscriptions whose custom header values are still in plaintext,
-- written before migration 7 (or by an older daemon during an upgrade).
SELECT id, headers
FROM outbox.subscriptions
WHERE headers <> '{}'
ORDER BY id
LIMIT @max
FOR UPDATE SKIP LOCKED;

-- name: HeadersToUnseal :many
-- A batch of subscriptions with sealed header values, for a downgrade below
-- migration 7, which keeps them in plaintext.
SELECT id, headers, headers_key_id, headers_ciphertext
FROM outbox.subscriptions
WHERE headers_ciphertext IS NOT NULL
ORDER BY id
LIMIT @max
FOR UPDATE SKIP LOCKED;

-- name: HeadersUnseal :exec
UPDATE outbox.subscriptions
SET headers = @headers::jsonb, headers_key_id = NULL, headers_ciphertext = NULL
WHERE id = @id;
