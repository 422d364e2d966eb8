-- name: SubscriptionInsert :one
INSERT INTO outbox.subscriptions (organization_id, agent_id, url, event_types, description, retry_schedule_ms, agent_webhook, rate_limit_per_second,
    max_in_flight, ordering, on_dead)
VALUES (
    sqlc.narg(organization_id),
    sqlc.narg(agent_id),
    @url,
    @event_types::text[],
    @description,
    sqlc.narg(retry_schedule_ms)::bigint[],
    @agent_webhook,
    sqlc.narg(rate_limit_per_second)::integer,
    sqlc.narg(max_in_flight)::integer,
    @ordering,
    @on_dead
)
RETURNING *;

-- name: SubscriptionHeadersSet :exec
-- Replaces a subscription's custom headers: their names, and their values sealed
-- (both NULL when there are none). A plaintext copy from before migration 7 goes.
UPDATE outbox.subscriptions
SET header_names = @header_names::text[],
    headers_key_id = sqlc.narg(key_id)::text,
    headers_ciphertext = sqlc.narg(ciphertext)::bytea,
    headers = '{}'
WHERE id = @id;

-- name: SubscriptionSecretInsert :exec
INSERT INTO outbox.subscription_secrets (subscription_id, key_id, ciphertext, expires_at)
VALUES (@subscription_id, @key_id, @ciphertext, sqlc.narg(expires_at));

-- name: SubscriptionGet :one
SELECT * FROM outbox.subscriptions WHERE id = @id;

-- name: SubscriptionList :many
SELECT *
FROM outbox.subscriptions
WHERE (sqlc.narg(agent_id)::text IS NULL OR agent_id = sqlc.narg(agent_id))
    AND (sqlc.narg(organization_id)::text IS NULL OR organization_id = sqlc.narg(organization_id))
    AND (sqlc.narg(enabled)::boolean IS NULL OR enabled = sqlc.narg(enabled))
    AND id > @after
ORDER BY id
LIMIT @max;

-- name: SubscriptionDelete :execrows
DELETE FROM outbox.subscriptions WHERE id = @id;

-- name: SubscriptionDisable :execrows
UPDATE outbox.subscriptions
SET enabled = false, disabled_reason = @reason, disabled_at = now(), updated_at = now()
WHERE id = @id AND enabled;

-- name: SubscriptionGetForUpdate :one
SELECT * FROM outbox.subscriptions WHERE id = @id FOR UPDATE;

-- name: SubscriptionUpdate :one
-- Writes every editable field; the caller merges a partial update into the current
-- row (read FOR UPDATE in the same transaction) first.
UPDATE outbox.subscriptions
SET url = @url,
    event_types = @event_types::text[],
    description = @description,
    retry_schedule_ms = sqlc.narg(retry_schedule_ms)::bigint[],
    rate_limit_per_second = sqlc.narg(rate_limit_per_second)::integer,
    max_in_flight = sqlc.narg(max_in_flight)::integer,
    ordering = @ordering,
    on_dead = @on_dead,
    updated_at = now()
WHERE id = @id
RETURNING *;

-- name: SubscriptionEnable :execrows
UPDATE outbox.subscriptions
SET enabled = true, disabled_reason = NULL, disabled_at = NULL, updated_at = now(),
    failure_streak = 0, failing_since = NULL, circuit_open_until = NULL
WHERE id = @id AND NOT enabled;

-- name: AgentWebhookGet :one
SELECT * FROM outbox.subscriptions WHERE agent_id = @agent_id AND agent_webhook;

-- name: AgentWebhookSecretsExpire :exec
-- Replacing an agent's webhook secret ends the old ones at once (a rotation with a
-- grace period is POST /v1/subscriptions/{id}/secret/rotate).
UPDATE outbox.subscription_secrets
SET expires_at = now()
WHERE subscription_id = @subscription_id AND (expires_at IS NULL OR expires_at > now());

-- name: SecretRotateExpireCurrent :execrows
-- A rotation's old secrets keep signing until @expires_at (never longer than they
-- already would).
UPDATE outbox.subscription_secrets
SET expires_at = least(coalesce(expires_at, 'infinity'::timestamptz), @expires_at::timestamptz)
WHERE subscription_id = @subscription_id AND (expires_at IS NULL OR expires_at > now());

-- name: SecretRotatePrune :exec
-- Secrets that stopped signing over a week ago are of no further use.
DELETE FROM outbox.subscription_secrets
WHERE subscription_id = @subscription_id AND expires_at < now() - interval '7 days';

-- name: RateLimitTake :one
-- Takes one delivery slot of a rate-limited subscription, or says how long to
-- wait for one. Concurrent takers serialise on the row lock, across daemons.
-- Slots are a full interval (1 / rate) apart with no tolerance, so any second
-- holds at most rate + 1 of them, and requests still arrive within that when the
-- network or the daemon delays one by up to an interval.
WITH s AS (
    SELECT sub.id, sub.rate_limit_per_second AS rate,
        greatest(coalesce(sub.rate_tat, now()), now()) AS tat
    FROM outbox.subscriptions AS sub
    WHERE sub.id = @subscription_id AND sub.rate_limit_per_second IS NOT NULL
    FOR UPDATE
),
taken AS (
    UPDATE outbox.subscriptions AS t
    SET rate_tat = s.tat + make_interval(secs => 1.0 / s.rate)
    FROM s
    WHERE t.id = s.id AND s.tat <= now()
    RETURNING t.id
)
SELECT
    EXISTS (SELECT 1 FROM taken) AS allowed,
    coalesce((SELECT extract(epoch FROM s.tat - now()) FROM s), 0)::float8 AS wait_seconds;

-- name: CircuitProbeTake :one
-- After the breaker's wait, the first delivery to ask becomes the probe: the
-- circuit stays shut to the others for probe_seconds while it tries.
UPDATE outbox.subscriptions
SET circuit_open_until = now() + make_interval(secs => @probe_seconds::float8)
WHERE id = @subscription_id AND circuit_open_until IS NOT NULL AND circuit_open_until <= now()
RETURNING id;

-- name: SubscriptionFailureRecord :one
-- Counts a failed attempt. While the circuit is closed every failure counts, and
-- the threshold-th in a row opens it for backoff_min. While it is open only a
-- failed probe (@probe) counts, and doubles the wait up to backoff_max: the
-- failures of attempts that were already in flight when it opened say nothing
-- new about the endpoint. failing_since, which auto-disable goes by, starts at the
-- first failure of the run either way.
UPDATE outbox.subscriptions AS s
SET failure_streak = s.failure_streak + (CASE WHEN counted.counts THEN 1 ELSE 0 END),
    failing_since = coalesce(s.failing_since, now()),
    circuit_open_until = (CASE
        WHEN counted.counts AND s.failure_streak + 1 >= sqlc.arg(threshold)::integer THEN now() + least(
            make_interval(secs => sqlc.arg(backoff_min_seconds)::float8 * power(2, least(s.failure_streak + 1 - sqlc.arg(threshold)::integer, 20))),
            make_interval(secs => sqlc.arg(backoff_max_seconds)::float8))
        ELSE s.circuit_open_until
    END)
FROM (
    SELECT o.id, o.circuit_open_until IS NULL AS was_closed, (o.circuit_open_until IS NULL OR sqlc.arg(probe)::boolean) AS counts
    FROM outbox.subscriptions AS o
    WHERE o.id = @subscription_id
    FOR UPDATE
) AS counted
WHERE s.id = counted.id
RETURNING s.failure_streak, s.failing_since, s.circuit_open_until, s.enabled, s.organization_id, s.url,
    (counted.was_closed AND s.circuit_open_until IS NOT NULL)::boolean AS opened,
    (s.failing_since <= now() - make_interval(secs => sqlc.arg(disable_after_seconds)::float8))::boolean AS disable_due;

-- name: SubscriptionSuccessRecord :one
-- Ends a run of failures; reports whether the circuit had opened.
UPDATE outbox.subscriptions AS s
SET failure_streak = 0, failing_since = NULL, circuit_open_until = NULL
FROM (SELECT o.id, o.failure_streak, o.circuit_open_until FROM outbox.subscriptions AS o WHERE o.id = @subscription_id FOR UPDATE) AS old
WHERE s.id = old.id AND old.failure_streak > 0
RETURNING old.failure_streak AS previous_streak, (old.circuit_open_until IS NOT NULL)::boolean AS was_open,
    s.organization_id, s.url;

-- name: OperationalPublishAllow :exec
-- Lets this transaction publish outboxd.* events (migration 5 reserves them).
SELECT set_config('outboxd.operational', 'on', true);
