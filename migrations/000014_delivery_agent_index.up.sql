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
