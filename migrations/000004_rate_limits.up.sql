-- Per-subscription rate limits, enforced across every daemon with a generic cell
-- rate algorithm on the subscription's row: rate_tat is the theoretical arrival
-- time of the next delivery; a delivery may go when rate_tat is at most half an
-- emission interval (1 / rate) ahead of now. Any second then holds at most rate + 1
-- deliveries, with half an interval to spare for network jitter.
ALTER TABLE outbox.subscriptions
    ADD COLUMN rate_limit_per_second integer
        CONSTRAINT subscriptions_rate_limit CHECK (rate_limit_per_second BETWEEN 1 AND 100000),
    ADD COLUMN rate_tat timestamptz;
