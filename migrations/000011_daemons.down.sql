DROP TABLE outbox.daemons;
