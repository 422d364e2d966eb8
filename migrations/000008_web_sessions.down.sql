DROP TABLE IF EXISTS outbox.web_sessions;
