-- Ordered lines. A subscription with ordering 'agent' has one line per agent
-- (events without an agent form one more). Every delivery of a line but its head
-- waits in River's 'pending' state, which River never fetches; the transactions
-- that change a line (fan-out, the end of the head, a retry, enabling) hold the
-- line's agent lock and then make the next delivery due with OrderedPromote. So
-- at most one delivery of a line is ever due or running, and only River's own
-- record of a run ever changes a job that ran.

-- name: OrderedAgentsOfEvents :many
-- The agents ('' for none) of a batch of events, sorted, when any enabled
-- subscription orders its deliveries; none otherwise, so fan-out without ordered
-- subscriptions takes no lock.
SELECT DISTINCT coalesce(e.agent_id, '')::text AS agent
FROM outbox.events AS e
WHERE e.id = ANY(@event_seqs::bigint[])
    AND EXISTS (SELECT 1 FROM outbox.subscriptions AS s WHERE s.ordering = 'agent' AND s.enabled)
ORDER BY 1;

-- name: OrderedAgentsOfJobs :many
-- The agents of the ordered deliveries among @ids, sorted.
SELECT DISTINCT coalesce(j.args ->> 'agent_id', '')::text AS agent
FROM outbox.river_job AS j
WHERE j.id = ANY(@ids::bigint[]) AND j.kind = 'outboxd.delivery' AND j.args ? 'seq'
ORDER BY 1;

-- name: OrderedAgentsOfSubscription :many
-- The agents of a subscription's lines that have a delivery not yet ended, sorted.
SELECT DISTINCT coalesce(j.args ->> 'agent_id', '')::text AS agent
FROM outbox.river_job AS j
WHERE j.kind = 'outboxd.delivery' AND j.args ? 'seq' AND j.state NOT IN ('completed', 'cancelled')
    AND j.args ->> 'subscription_id' = @subscription_id::text
ORDER BY 1;

-- name: OrderedAgentsWaiting :many
-- Agents whose lines have deliveries waiting for their turn, in order after
-- @after_agent (NULL: from the first), for the sweep that makes sure no line stalls.
SELECT DISTINCT coalesce(j.args ->> 'agent_id', '')::text AS agent
FROM outbox.river_job AS j
WHERE j.kind = 'outboxd.delivery' AND j.args ? 'seq' AND j.state = 'pending'
    AND (sqlc.narg(after_agent)::text IS NULL OR coalesce(j.args ->> 'agent_id', '') > sqlc.narg(after_agent)::text)
ORDER BY 1
LIMIT @max;

-- name: OrderedLinesWaitingExist :one
-- Whether any ordered line has a delivery waiting for its turn: if none does,
-- the sweep has nothing to look at. River's fetch index serves the state.
SELECT EXISTS (
    SELECT 1 FROM outbox.river_job AS j
    WHERE j.state = 'pending' AND j.kind = 'outboxd.delivery' AND j.args ? 'seq'
)::boolean AS waiting;

-- name: OrderedLinesLock :exec
-- Takes the agents' line locks for the rest of the transaction, in the order
-- given (callers sort the keys, so two transactions never wait on each other in
-- a cycle).
SELECT count(pg_advisory_xact_lock(hashtextextended(k.key, 0)))
FROM unnest(@keys::text[]) WITH ORDINALITY AS k(key, n);

-- name: OrderedPromote :one
-- Makes due the head of every line of @agents (for each enabled subscription
-- with ordering 'agent') when the head waits in 'pending' and the line has
-- nothing due or running. The head is the line's earliest delivery not yet
-- ended; a dead one is the head (and holds the line) unless the subscription
-- skips dead deliveries. @finishing_id is a delivery whose run is ending right
-- now and counts as ended (0: none). An earlier event of the agent that has not
-- been fanned out yet keeps the line waiting too: its delivery may come first,
-- and its fan-out promotes the line. Such an event is either not claimed yet
-- (the small events_undispatched index) or in a fan-out job not yet done
-- (River's state index); the relay's claim moves it from one to the other in one
-- transaction.
WITH lines AS (
    SELECT s.id AS subscription_id, s.on_dead, a.agent
    FROM outbox.subscriptions AS s
    CROSS JOIN unnest(@agents::text[]) AS a(agent)
    WHERE s.ordering = 'agent' AND s.enabled
),
heads AS (
    SELECT h.id, l.agent, (h.args ->> 'seq')::bigint AS seq
    FROM lines AS l
    CROSS JOIN LATERAL (
        SELECT j.id, j.state, j.args
        FROM outbox.river_job AS j
        WHERE j.kind = 'outboxd.delivery' AND j.args ? 'seq' AND j.state NOT IN ('completed', 'cancelled')
            AND j.args ->> 'subscription_id' = l.subscription_id
            AND coalesce(j.args ->> 'agent_id', '') = l.agent
            AND j.id <> @finishing_id::bigint
            AND NOT (l.on_dead = 'skip' AND j.state = 'discarded')
        ORDER BY (j.args ->> 'seq')::bigint
        LIMIT 1
    ) AS h
    WHERE h.state = 'pending'
        AND NOT EXISTS (
            SELECT 1
            FROM outbox.river_job AS j
            WHERE j.kind = 'outboxd.delivery' AND j.args ? 'seq'
                AND j.state IN ('available', 'running', 'retryable', 'scheduled')
                AND j.args ->> 'subscription_id' = l.subscription_id
                AND coalesce(j.args ->> 'agent_id', '') = l.agent
                AND j.id <> @finishing_id::bigint
        )
),
due AS (
    SELECT h.id
    FROM heads AS h
    WHERE NOT EXISTS (
            SELECT 1 FROM outbox.events AS e
            WHERE e.dispatched_at IS NULL AND e.id < h.seq AND coalesce(e.agent_id, '') = h.agent
        )
        AND NOT EXISTS (
            SELECT 1
            FROM outbox.river_job AS f
            CROSS JOIN LATERAL jsonb_array_elements_text(f.args -> 'event_seqs') AS batch(seq)
            JOIN outbox.events AS e ON e.id = batch.seq::bigint
            WHERE f.state IN ('available', 'running', 'retryable', 'scheduled', 'pending')
                AND f.queue = 'fanout' AND f.kind = 'outboxd.fanout'
                AND e.id < h.seq AND e.fanned_out_at IS NULL AND coalesce(e.agent_id, '') = h.agent
        )
),
promoted AS (
    UPDATE outbox.river_job AS j
    SET state = 'available', scheduled_at = now()
    FROM due
    WHERE j.id = due.id AND j.state = 'pending'
    RETURNING j.queue
)
-- River's fetchers hear of the due deliveries as they would of an insert.
SELECT count(*)::bigint AS promoted,
    count(pg_notify('outbox.river_insert', json_build_object('queue', p.queue)::text))::bigint AS notified
FROM promoted AS p;

-- name: OrderedRequeue :exec
-- Puts ended ordered deliveries (delivered, dead or cancelled) back in their
-- lines to be sent again, with one more attempt if they had used them all; the
-- caller then promotes their lines.
UPDATE outbox.river_job AS j
SET state = 'pending',
    finalized_at = NULL,
    max_attempts = CASE WHEN j.attempt >= j.max_attempts THEN j.attempt + 1 ELSE j.max_attempts END,
    metadata = j.metadata - 'cancel_attempted_at'
WHERE j.id = ANY(@ids::bigint[]) AND j.kind = 'outboxd.delivery' AND j.args ? 'seq'
    AND j.state IN ('completed', 'discarded', 'cancelled');

-- name: OrderedResumeHeads :execrows
-- Makes a subscription's ordered deliveries that wait on a timer due now: on
-- enabling, the heads that found it disabled and are waiting to look again.
WITH resumed AS (
    UPDATE outbox.river_job AS j
    SET state = 'available', scheduled_at = now()
    WHERE j.kind = 'outboxd.delivery' AND j.args ? 'seq' AND j.state = 'scheduled'
        AND j.args ->> 'subscription_id' = @subscription_id::text
    RETURNING j.queue
)
SELECT count(pg_notify('outbox.river_insert', json_build_object('queue', r.queue)::text)) FROM resumed AS r;

-- name: OrderedRelease :execrows
-- A subscription that no longer orders its deliveries lets all of them go.
WITH released AS (
    UPDATE outbox.river_job AS j
    SET state = 'available', scheduled_at = now()
    WHERE j.kind = 'outboxd.delivery' AND j.args ? 'seq' AND j.state = 'pending'
        AND j.args ->> 'subscription_id' = @subscription_id::text
    RETURNING j.queue
)
SELECT count(pg_notify('outbox.river_insert', json_build_object('queue', r.queue)::text)) FROM released AS r;

-- name: OrderedCancelWaiting :execrows
-- A deleted subscription's deliveries that wait for their turn would never be
-- fetched (and River never deletes pending jobs): cancel them.
UPDATE outbox.river_job AS j
SET state = 'cancelled', finalized_at = now(),
    errors = array_append(j.errors, jsonb_build_object(
        'at', now(), 'attempt', j.attempt, 'error', 'subscription ' || @subscription_id::text || ' was deleted', 'trace', ''))
WHERE j.kind = 'outboxd.delivery' AND j.args ? 'seq' AND j.state = 'pending'
    AND j.args ->> 'subscription_id' = @subscription_id::text;

-- name: OrderedJobState :one
-- River's state of an ordered delivery (no row when @id is not one).
SELECT j.state::text AS state
FROM outbox.river_job AS j
WHERE j.id = @id AND j.kind = 'outboxd.delivery' AND j.args ? 'seq';
