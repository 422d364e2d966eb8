-- Portal sessions: an admin or an organization's token asks for a one-time link
-- (POST /v1/portal/sessions, `outboxd portal link`) that opens the tenant portal
-- for one organization (optionally one agent). Opening the link exchanges its
-- token, once, for a browser session (outbox.web_sessions) that ends when the
-- portal session does. Only the SHA-256 of the link's token is kept.
CREATE TABLE outbox.portal_sessions (
    id text PRIMARY KEY DEFAULT outbox.new_id('psn_'),
    organization_id text NOT NULL CONSTRAINT portal_sessions_organization_id_length CHECK (length(organization_id) BETWEEN 1 AND 255),
    -- Narrows the portal to one agent's webhooks; NULL shows the whole organization.
    agent_id text CONSTRAINT portal_sessions_agent_id_length CHECK (length(agent_id) BETWEEN 1 AND 255),
    link_digest bytea NOT NULL CONSTRAINT portal_sessions_link_digest_key UNIQUE,
    -- Who asked for it: "admin", "cli", or an organization token's id.
    created_by text NOT NULL DEFAULT '' CONSTRAINT portal_sessions_created_by_length CHECK (length(created_by) <= 255),
    created_at timestamptz NOT NULL DEFAULT now(),
    -- The link must be opened before this, and the session it starts ends then.
    expires_at timestamptz NOT NULL,
    -- When the link was opened (it opens once), and the browser session it started.
    opened_at timestamptz,
    web_session_id text REFERENCES outbox.web_sessions (id) ON DELETE SET NULL,
    revoked_at timestamptz,
    CONSTRAINT portal_sessions_expiry CHECK (expires_at > created_at)
);

CREATE INDEX portal_sessions_organization ON outbox.portal_sessions (organization_id, id);
CREATE INDEX portal_sessions_expires_at ON outbox.portal_sessions (expires_at);
CREATE INDEX portal_sessions_web_session ON outbox.portal_sessions (web_session_id) WHERE web_session_id IS NOT NULL;
