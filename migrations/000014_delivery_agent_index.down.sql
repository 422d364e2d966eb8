-- The agents written into deliveries' args stay: the ordered lines read them
-- only from deliveries that also carry a seq, and the history of the versions
-- before ignores them.
DROP INDEX outbox.river_job_outboxd_delivery_ended;
DROP INDEX outbox.river_job_outboxd_delivery_agent;
