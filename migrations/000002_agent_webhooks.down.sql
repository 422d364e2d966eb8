DROP INDEX IF EXISTS outbox.subscriptions_agent_webhook;
ALTER TABLE outbox.subscriptions
    DROP CONSTRAINT IF EXISTS subscriptions_agent_webhook_agent,
    DROP COLUMN IF EXISTS agent_webhook;
