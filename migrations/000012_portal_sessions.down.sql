DROP TABLE outbox.portal_sessions;
