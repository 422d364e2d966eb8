-- name: TokenInsert :one
INSERT INTO outbox.api_tokens (organization_id, name, prefix, digest)
VALUES (@organization_id, @name, @prefix, @digest)
RETURNING *;

-- name: TokenByDigest :one
-- Authentication: an unrevoked token by its digest. last_used_at is refreshed at
-- most once a minute, so busy clients do not write on every request.
WITH found AS (
    SELECT t.id FROM outbox.api_tokens AS t WHERE t.digest = @digest AND t.revoked_at IS NULL
),
touched AS (
    UPDATE outbox.api_tokens AS t
    SET last_used_at = now()
    FROM found
    WHERE t.id = found.id AND (t.last_used_at IS NULL OR t.last_used_at < now() - interval '1 minute')
    RETURNING t.id
)
SELECT t.*
FROM outbox.api_tokens AS t
JOIN found ON found.id = t.id;

-- name: TokenList :many
SELECT *
FROM outbox.api_tokens
WHERE (sqlc.narg(organization_id)::text IS NULL OR organization_id = sqlc.narg(organization_id))
    AND (@include_revoked::boolean OR revoked_at IS NULL)
    AND id > @after
ORDER BY id
LIMIT @max;

-- name: TokenRevoke :execrows
UPDATE outbox.api_tokens SET revoked_at = now() WHERE id = @id AND revoked_at IS NULL;

-- name: TokenExists :one
SELECT EXISTS (SELECT 1 FROM outbox.api_tokens WHERE id = @id) AS found;
