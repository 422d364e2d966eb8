-- Removes what 000001_core.up.sql created. River's tables, which share the schema, are
-- left to rivermigrate; the schema itself is left in place.
DROP VIEW IF EXISTS outbox.deliveries;
DROP TABLE IF EXISTS outbox.subscription_secrets;
DROP TABLE IF EXISTS outbox.subscriptions;
DROP FUNCTION IF EXISTS outbox.publish(text, jsonb, text, text, text);
DROP FUNCTION IF EXISTS outbox.publish_event(text, jsonb, text, text, text);
DROP FUNCTION IF EXISTS outbox.wake();
DROP TABLE IF EXISTS outbox.events;
DROP FUNCTION IF EXISTS outbox.events_validate();
DROP FUNCTION IF EXISTS outbox.event_type_matches(text[], text);
DROP FUNCTION IF EXISTS outbox.event_type_patterns_valid(text[]);
DROP FUNCTION IF EXISTS outbox.event_type_valid(text);
DROP FUNCTION IF EXISTS outbox.new_id(text);
DROP TABLE IF EXISTS outbox.settings;
