-- Delivery history by agent (GET /v1/deliveries?agent_id=…) newest first. The
-- fan-out now writes the event's agent into every delivery's args (before, only
-- ordered subscriptions' deliveries carried it), so an index can walk one agent's
-- deliveries in id order: looking up each delivery's event instead, newest first
-- until 50 matched, read tens of thousands of rows per page once there were
-- thousands of agents. Like migration 5's subscription index it covers only
-- deliveries, and its key is NULL for events without an agent.
--
-- Deliveries made before this migration that are not delivered (due, retrying,
-- dead, cancelled: what people look for) get their event's agent here, so the
-- filter finds them too. Delivered ones, almost every row, are left as they are:
-- rewriting them took about 10 minutes per million rows, and River's cleaner
-- deletes them after --completed-retention (24 h) anyway; until then the agent
-- filter does not list them.
UPDATE outbox.river_job AS j
SET args = j.args || jsonb_build_object('agent_id', e.agent_id)
FROM outbox.events AS e
WHERE j.kind = 'outboxd.delivery'
    AND j.state <> 'completed'
    AND NOT j.args ? 'agent_id'
    AND e.agent_id IS NOT NULL
    AND e.id = outbox.event_seq(j.args ->> 'event_id')
    AND e.created_at >= outbox.event_time(j.args ->> 'event_id')
    AND e.created_at < outbox.event_time(j.args ->> 'event_id') + interval '1 millisecond';

UPDATE outbox.river_job AS j
SET args = j.args || jsonb_build_object('agent_id', e.agent_id)
FROM outbox.events_legacy_ids AS l
JOIN outbox.events AS e ON e.id = l.event_seq AND e.created_at = l.event_created_at
WHERE j.kind = 'outboxd.delivery'
    AND j.state <> 'completed'
    AND NOT j.args ? 'agent_id'
    AND e.agent_id IS NOT NULL
    AND l.legacy_event_id = j.args ->> 'event_id';

CREATE INDEX river_job_outboxd_delivery_agent ON outbox.river_job ((args ->> 'agent_id'), id)
    WHERE kind = 'outboxd.delivery';

-- Delivery history by state dead or cancelled, newest first: one delivery in a
-- thousand or fewer, so walking all deliveries newest first read about a
-- thousand rows for each one listed. Only ended deliveries' rows have entries,
-- so it costs nothing on the way there.
CREATE INDEX river_job_outboxd_delivery_ended ON outbox.river_job (id)
    WHERE kind = 'outboxd.delivery' AND state IN ('discarded', 'cancelled');

-- Retention in two steps. Dropping a partition holds outbox.events' lock until
-- the dropping transaction commits, and that commit unlinks the partition's
-- files and forgets its buffers: on a busy server it measured up to a second
-- for a partition of a million events, with every producer's INSERT waiting.
-- Detaching takes the same lock only for a change of the catalog; the detached
-- table is then dropped in a transaction of its own, which no producer waits
-- for. (DETACH … CONCURRENTLY would not need the lock at all, but Postgres
-- refuses it on a table with a DEFAULT partition.)
CREATE FUNCTION outbox.events_partition_detach(partition_name text) RETURNS void
    LANGUAGE plpgsql
AS $$
DECLARE
    part record;
BEGIN
    SELECT * INTO part FROM outbox.events_partitions() AS p WHERE p.name = partition_name AND p.from_time IS NOT NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no partition % of outbox.events (the DEFAULT partition is never dropped)', quote_literal(partition_name)
            USING ERRCODE = 'undefined_table';
    END IF;
    DELETE FROM outbox.event_idempotency AS k WHERE k.event_created_at >= part.from_time AND k.event_created_at < part.to_time;
    DELETE FROM outbox.events_legacy_ids AS l WHERE l.event_created_at >= part.from_time AND l.event_created_at < part.to_time;
    EXECUTE format('ALTER TABLE outbox.events DETACH PARTITION outbox.%I', partition_name);
END
$$;

-- Drops the tables events_partition_detach left (all of them: one left by a
-- retention run that stopped between its two steps too), and returns their names.
-- A partition being made is never seen here: events_partition_create makes and
-- attaches it in one transaction.
CREATE FUNCTION outbox.events_detached_drop() RETURNS SETOF text
    LANGUAGE plpgsql
AS $$
DECLARE
    detached text;
BEGIN
    FOR detached IN
        SELECT c.relname::text FROM pg_class AS c
        WHERE c.relnamespace = (SELECT t.relnamespace FROM pg_class AS t WHERE t.oid = 'outbox.events'::regclass) AND c.relkind = 'r' AND c.relname ~ '^events_p[0-9]{8}'
            AND NOT c.relispartition
        ORDER BY 1
    LOOP
        EXECUTE format('DROP TABLE outbox.%I', detached);
        RETURN NEXT detached;
    END LOOP;
END
$$;
