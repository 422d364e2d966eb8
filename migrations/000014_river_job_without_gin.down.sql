DROP INDEX outbox.river_job_outboxd_delivery_event;
CREATE INDEX IF NOT EXISTS river_job_args_index ON outbox.river_job USING GIN (args);
CREATE INDEX IF NOT EXISTS river_job_metadata_index ON outbox.river_job USING GIN (metadata);
