-- Removes outboxd's Letta integration: the triggers from Letta's tables and the
-- functions and tables in the outboxd schema. Letta's data is untouched; events
-- already published stay in the outbox.
DROP TRIGGER IF EXISTS outboxd_steps ON {{letta}}.steps;
DROP TRIGGER IF EXISTS outboxd_runs ON {{letta}}.runs;
DROP TRIGGER IF EXISTS outboxd_run_callback ON {{letta}}.runs;
DROP TRIGGER IF EXISTS outboxd_jobs ON {{letta}}.jobs;
DROP TRIGGER IF EXISTS outboxd_tool_attached ON {{letta}}.tools_agents;
DROP TRIGGER IF EXISTS outboxd_tool_detached ON {{letta}}.tools_agents;
DROP TRIGGER IF EXISTS outboxd_messages ON {{letta}}.messages;
DROP TRIGGER IF EXISTS outboxd_agent_webhook ON {{letta}}.agents;
DROP FUNCTION IF EXISTS {{outbox}}.letta_steps();
DROP FUNCTION IF EXISTS {{outbox}}.letta_runs();
DROP FUNCTION IF EXISTS {{outbox}}.letta_run_callback();
DROP FUNCTION IF EXISTS {{outbox}}.letta_jobs();
DROP FUNCTION IF EXISTS {{outbox}}.letta_tool_attached();
DROP FUNCTION IF EXISTS {{outbox}}.letta_tool_detached();
DROP FUNCTION IF EXISTS {{outbox}}.letta_messages();
DROP FUNCTION IF EXISTS {{outbox}}.letta_agent_webhook();
DROP FUNCTION IF EXISTS {{outbox}}.letta_emit(text, text, text, jsonb);
DROP FUNCTION IF EXISTS {{outbox}}.letta_record_error(text, text, text, text);
DROP TABLE IF EXISTS {{outbox}}.letta_install;
DROP TABLE IF EXISTS {{outbox}}.letta_trigger_errors;
