-- For sqlc's type checker only; never executed. River creates the real table with
-- rivermigrate (River v0.51.1, migration line "main"). This lists just the columns
-- outboxd's queries and the outbox.deliveries view read.
CREATE SCHEMA IF NOT EXISTS outbox;

CREATE TYPE outbox.river_job_state AS ENUM (
    'available', 'cancelled', 'completed', 'discarded', 'pending', 'retryable', 'running', 'scheduled'
);

CREATE TABLE outbox.river_job (
    id bigint PRIMARY KEY,
    state outbox.river_job_state NOT NULL,
    attempt smallint NOT NULL,
    max_attempts smallint NOT NULL,
    attempted_at timestamptz,
    created_at timestamptz NOT NULL,
    finalized_at timestamptz,
    scheduled_at timestamptz NOT NULL,
    priority smallint NOT NULL,
    args jsonb NOT NULL,
    attempted_by text[],
    errors jsonb[],
    kind text NOT NULL,
    metadata jsonb NOT NULL,
    queue text NOT NULL,
    tags varchar(255)[] NOT NULL
);
