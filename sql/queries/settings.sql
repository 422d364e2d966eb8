-- name: SettingsGet :one
SELECT * FROM outbox.settings;
