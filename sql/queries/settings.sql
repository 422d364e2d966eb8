-- name: SettingsGet :one
SELECT * FROM outbox.settings;

-- name: TransactionNow :one
-- The transaction's clock, so times computed in Go agree with those written by SQL.
SELECT now()::timestamptz AS now;

-- name: BackendPID :one
-- The server process serving this connection, to tell whether a pooler hands
-- the session's server process to others between transactions.
SELECT pg_backend_pid()::integer AS pid;

-- name: AutovacuumOff :one
-- Whether autovacuum looks after the schema's tables: server_off when the server
-- runs without it (autovacuum = off), and the tables where it is switched off
-- (autovacuum_enabled = false). Without it, every row River's jobs and the relay
-- update or delete stays in the tables and their indexes.
SELECT
    NOT current_setting('autovacuum')::boolean AS server_off,
    coalesce(array_agg(c.relname::text ORDER BY c.relname), '{}')::text[] AS tables_off
FROM pg_catalog.pg_class AS c
WHERE c.relnamespace = (SELECT r.relnamespace FROM pg_catalog.pg_class AS r WHERE r.oid = 'outbox.settings'::regclass)
    AND c.relkind = 'r'
    AND 'autovacuum_enabled=false' = ANY (coalesce(c.reloptions, '{}'));
