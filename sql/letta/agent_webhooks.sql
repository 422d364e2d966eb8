-- Optional part of the Letta integration, installed only when Letta's agents table
-- has the per-agent webhook columns (webhook_url, webhook_secret, webhook_events,
-- webhook_enabled): any change to them, and deleting the agent, queues an
-- outboxd.letta_agent_webhook River job in Letta's transaction. The daemon then
-- makes the agent's webhook subscription match the columns, sealing the secret with
-- outboxd's key.
CREATE OR REPLACE FUNCTION {{outbox}}.letta_agent_webhook() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    agent text;
BEGIN
    IF TG_OP = 'DELETE' THEN
        agent := OLD.id;
    ELSE
        agent := NEW.id;
    END IF;
    BEGIN
        INSERT INTO {{outbox}}.river_job (args, kind, max_attempts, queue)
        VALUES (jsonb_build_object('letta_schema', '{{letta}}', 'agent_id', agent), 'outboxd.letta_agent_webhook', 8, 'fanout');
    EXCEPTION WHEN OTHERS THEN
        PERFORM {{outbox}}.letta_record_error(TG_TABLE_NAME, TG_OP, SQLSTATE, SQLERRM);
    END;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS outboxd_agent_webhook ON {{letta}}.agents;
CREATE TRIGGER outboxd_agent_webhook
    AFTER INSERT OR DELETE OR UPDATE OF webhook_url, webhook_secret, webhook_events, webhook_enabled ON {{letta}}.agents
    FOR EACH ROW EXECUTE FUNCTION {{outbox}}.letta_agent_webhook();
