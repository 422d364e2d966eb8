-- The agents written into deliveries' args stay: the ordered lines read them
-- only from deliveries that also carry a seq, and the history of the versions
-- before ignores them.
DROP INDEX outbox.river_job_outboxd_delivery_ended;
DROP INDEX outbox.river_job_outboxd_delivery_agent;
-- Retention goes back to dropping partitions in one step; a detached table
-- left behind (none unless a retention run stopped halfway) goes with it.
SELECT outbox.events_detached_drop();
DROP FUNCTION outbox.events_detached_drop();
DROP FUNCTION outbox.events_partition_detach(text);
