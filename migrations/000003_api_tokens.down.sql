DROP TABLE IF EXISTS outbox.api_tokens;
