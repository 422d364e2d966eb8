-- name: WebSessionInsert :one
INSERT INTO outbox.web_sessions (organization_id, agent_id, api_token_id, admin_token_digest, token_digest, user_agent, expires_at)
VALUES (sqlc.narg(organization_id), sqlc.narg(agent_id), sqlc.narg(api_token_id), sqlc.narg(admin_token_digest), @token_digest, @user_agent,
    now() + make_interval(secs => @lifetime_seconds::double precision))
RETURNING *;

-- name: WebSessionSweep :execrows
-- Deletes sessions that ended (expired or signed out) more than a day ago; run
-- at each sign-in, so the table stays as small as the sessions in use.
DELETE FROM outbox.web_sessions
WHERE expires_at < now() - interval '1 day' OR revoked_at < now() - interval '1 day';

-- name: WebSessionByDigest :one
-- Authentication: a live session by its token's digest (not signed out, not
-- expired, and its organization token, if any, not revoked). last_seen_at is
-- refreshed at most once a minute, so a busy page does not write on every request.
WITH found AS (
    SELECT s.id
    FROM outbox.web_sessions AS s
    LEFT JOIN outbox.api_tokens AS t ON t.id = s.api_token_id
    WHERE s.token_digest = @token_digest
        AND s.revoked_at IS NULL
        AND s.expires_at > now()
        AND (s.api_token_id IS NULL OR t.revoked_at IS NULL)
),
touched AS (
    UPDATE outbox.web_sessions AS s
    SET last_seen_at = now()
    FROM found
    WHERE s.id = found.id AND s.last_seen_at < now() - interval '1 minute'
    RETURNING s.id
)
SELECT s.*
FROM outbox.web_sessions AS s
JOIN found ON found.id = s.id;

-- name: WebSessionRevoke :execrows
UPDATE outbox.web_sessions SET revoked_at = now() WHERE token_digest = @token_digest AND revoked_at IS NULL;
