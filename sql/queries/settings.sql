-- name: SettingsGet :one
SELECT * FROM outbox.settings;

-- name: TransactionNow :one
-- The transaction's clock, so times computed in Go agree with those written by SQL.
SELECT now()::timestamptz AS now;

-- name: BackendPID :one
-- The server process serving this connection, to tell whether a pooler hands
-- the session's server process to others between transactions.
SELECT pg_backend_pid()::integer AS pid;
