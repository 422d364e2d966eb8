-- Browser sessions: the River UI's /login form (admin sessions) and, later, the
-- tenant portal (organization sessions). The cookie holds a random 32-byte
-- token; only its SHA-256 digest is kept, so a leaked table opens nothing.
CREATE TABLE outbox.web_sessions (
    id text PRIMARY KEY DEFAULT outbox.new_id('ses_'),
    -- NULL: an admin (operator) session. Otherwise the organization it sees.
    organization_id text CONSTRAINT web_sessions_organization_id_length CHECK (length(organization_id) BETWEEN 1 AND 255),
    -- Narrows an organization session to one agent; NULL sees the whole organization.
    agent_id text CONSTRAINT web_sessions_agent_id_length CHECK (length(agent_id) BETWEEN 1 AND 255),
    -- The organization token signed in with, if any: revoking or deleting it ends the session.
    api_token_id text REFERENCES outbox.api_tokens (id) ON DELETE CASCADE,
    -- An admin session's credential: the SHA-256 of the admin token it signed in
    -- with, so that removing that token from the daemons' configuration ends it.
    admin_token_digest bytea,
    token_digest bytea NOT NULL CONSTRAINT web_sessions_token_digest_key UNIQUE,
    -- The browser that signed in, for an operator reviewing sessions.
    user_agent text NOT NULL DEFAULT '' CONSTRAINT web_sessions_user_agent_length CHECK (length(user_agent) <= 512),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    CONSTRAINT web_sessions_expiry CHECK (expires_at > created_at),
    CONSTRAINT web_sessions_agent_in_organization CHECK (agent_id IS NULL OR organization_id IS NOT NULL),
    CONSTRAINT web_sessions_admin_credential CHECK (organization_id IS NOT NULL OR admin_token_digest IS NOT NULL)
);

-- Sign-ins sweep sessions that ended long ago.
CREATE INDEX web_sessions_expires_at ON outbox.web_sessions (expires_at);
CREATE INDEX web_sessions_organization ON outbox.web_sessions (organization_id) WHERE organization_id IS NOT NULL;
CREATE INDEX web_sessions_api_token ON outbox.web_sessions (api_token_id) WHERE api_token_id IS NOT NULL;
