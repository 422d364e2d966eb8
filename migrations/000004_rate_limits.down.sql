ALTER TABLE outbox.subscriptions
    DROP COLUMN IF EXISTS rate_tat,
    DROP COLUMN IF EXISTS rate_limit_per_second;
