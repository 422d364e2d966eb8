-- Daemons record that they are alive. Each `outboxd run` registers under its
-- River client id (the id River writes into river_job.attempted_by) and beats a
-- heartbeat every few seconds. When a daemon's heartbeat stops (killed, or cut
-- off from the database), the others take over the jobs it was running within
-- seconds, instead of waiting for River's rescuer, which must wait longer than
-- the slowest legitimate request before it may presume a job lost.
CREATE TABLE outbox.daemons (
    -- The daemon's River client id.
    id text PRIMARY KEY,
    hostname text NOT NULL DEFAULT '',
    pid integer NOT NULL DEFAULT 0,
    version text NOT NULL DEFAULT '',
    started_at timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    -- Set when the daemon stopped, or was presumed dead; stop_reason says which.
    stopped_at timestamptz,
    stop_reason text
);
