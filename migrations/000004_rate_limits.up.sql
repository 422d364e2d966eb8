-- Per-subscription rate limits, enforced across every daemon with a generic cell
-- rate algorithm on the subscription's row: rate_tat is the theoretical arrival
-- time of the next delivery; a delivery may go once rate_tat has passed (the query
-- RateLimitTake), so any second holds at most rate + 1 deliveries.
ALTER TABLE outbox.subscriptions
    ADD COLUMN rate_limit_per_second integer
        CONSTRAINT subscriptions_rate_limit CHECK (rate_limit_per_second BETWEEN 1 AND 100000),
    ADD COLUMN rate_tat timestamptz;
