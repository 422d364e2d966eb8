-- Organization-scoped API tokens (outboxd tokens create --org O). Only a SHA-256
-- digest of each token is kept: tokens are 32 random bytes, so a fast digest is
-- enough, and a leaked table reveals no usable token. Admin tokens are not stored
-- here; they come from OUTBOXD_API_TOKEN.
CREATE TABLE outbox.api_tokens (
    id text PRIMARY KEY DEFAULT outbox.new_id('tok_'),
    organization_id text NOT NULL CONSTRAINT api_tokens_organization_id_length CHECK (length(organization_id) BETWEEN 1 AND 255),
    name text NOT NULL DEFAULT '' CONSTRAINT api_tokens_name_length CHECK (length(name) <= 200),
    -- The first characters of the token, to recognise it in a list.
    prefix text NOT NULL,
    digest bytea NOT NULL CONSTRAINT api_tokens_digest_unique UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at timestamptz
);
CREATE INDEX api_tokens_organization ON outbox.api_tokens (organization_id, id);
