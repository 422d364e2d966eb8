-- Per-agent webhook configuration (PUT /v1/agents/{agent_id}/webhook) is an
-- agent-scoped subscription marked agent_webhook; an agent has at most one.
ALTER TABLE outbox.subscriptions
    ADD COLUMN agent_webhook boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT subscriptions_agent_webhook_agent CHECK (NOT agent_webhook OR agent_id IS NOT NULL);
CREATE UNIQUE INDEX subscriptions_agent_webhook ON outbox.subscriptions (agent_id) WHERE agent_webhook;
