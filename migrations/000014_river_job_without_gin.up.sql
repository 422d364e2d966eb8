-- River's two GIN indexes on river_job, over every key and value of args and of
-- metadata, serve no query of outboxd's (nor the River UI's): the delivery
-- history's event filter, the recovery and the DEFAULT partition's retention
-- look a delivery up by its event id, which the btree index below finds. They
-- cost on every job write: a delivery's row is inserted once and updated at
-- least twice (running, then completed with its attempts in metadata), each
-- update a new row version with new entries in both, and their pending lists,
-- flushed by whichever write fills them, stalled claims and completions for
-- tens of milliseconds at a time. River's own queries do not use them either
-- (only JobList's metadata filter, which outboxd never calls).
DROP INDEX IF EXISTS outbox.river_job_args_index;
DROP INDEX IF EXISTS outbox.river_job_metadata_index;

-- With id, like migration 5's subscription and 13's agent index, so the history
-- walks one event's deliveries newest first whatever the planner estimates:
-- Postgres keeps no statistics for an expression of a partial index, and on
-- its default guess it walked all of river_job by id instead (seconds over
-- millions of deliveries).
CREATE INDEX river_job_outboxd_delivery_event ON outbox.river_job ((args ->> 'event_id'), id)
    WHERE kind = 'outboxd.delivery';
