-- name: SettingsGet :one
SELECT * FROM outbox.settings;

-- name: TransactionNow :one
-- The transaction's clock, so times computed in Go agree with those written by SQL.
SELECT now()::timestamptz AS now;
