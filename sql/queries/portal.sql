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
