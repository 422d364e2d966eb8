-- outboxd's Letta integration, version 1: AFTER row triggers on Letta's own tables
-- that publish lifecycle events into the outbox in Letta's transaction.
--
-- {{outbox}} and {{letta}} are replaced, after validation, by the outboxd schema and
-- the schema holding Letta's tables; nothing relies on search_path. Every function
-- lives in the outboxd schema; Letta's schema only gains the triggers, so uninstall
-- leaves it as it was.
--
-- Never break Letta: each trigger body runs in its own subtransaction; if it fails,
-- its events are dropped, the failure is recorded in {{outbox}}.letta_trigger_errors
-- and Letta's statement goes on. Payloads carry ids, statuses and counts, never
-- message text or tracebacks.

CREATE TABLE IF NOT EXISTS {{outbox}}.letta_install (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version integer NOT NULL,
    letta_schema text NOT NULL,
    events text[] NOT NULL,
    installed_at timestamptz NOT NULL DEFAULT now()
);

-- Run callbacks (install --callbacks): the signing secret is sealed by outboxd with
-- its encryption key (associated data "letta-callbacks"), never stored in clear.
ALTER TABLE {{outbox}}.letta_install
    ADD COLUMN IF NOT EXISTS callbacks boolean NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS callback_key_id text,
    ADD COLUMN IF NOT EXISTS callback_secret bytea;

CREATE TABLE IF NOT EXISTS {{outbox}}.letta_trigger_errors (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    table_name text NOT NULL,
    operation text NOT NULL,
    sqlstate text NOT NULL,
    message text NOT NULL
);

-- Publishes one event if the install enabled its type.
CREATE OR REPLACE FUNCTION {{outbox}}.letta_emit(event_type text, agent text, organization text, payload jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM {{outbox}}.letta_install AS i WHERE event_type = ANY (i.events)) THEN
        INSERT INTO {{outbox}}.events (type, agent_id, organization_id, payload)
        VALUES (event_type, agent, organization, jsonb_strip_nulls(payload));
    END IF;
END
$$;

-- Records a trigger's failure; never raises itself.
CREATE OR REPLACE FUNCTION {{outbox}}.letta_record_error(tbl text, op text, state text, msg text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO {{outbox}}.letta_trigger_errors (table_name, operation, sqlstate, message)
    VALUES (tbl, op, state, left(msg, 1000));
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'outboxd: could not record a Letta trigger error (%): %', SQLERRM, msg;
END
$$;

-- steps: agent.step.completed / agent.step.failed, once per transition into
-- SUCCESS or FAILED (status is Letta's stepstatus enum, upper-case labels).
CREATE OR REPLACE FUNCTION {{outbox}}.letta_steps() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    new_status text := NEW.status::text;
    event_type text;
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status IS NOT DISTINCT FROM NEW.status THEN
        RETURN NULL;
    END IF;
    event_type := CASE new_status WHEN 'SUCCESS' THEN 'agent.step.completed' WHEN 'FAILED' THEN 'agent.step.failed' END;
    IF event_type IS NULL THEN
        RETURN NULL;
    END IF;
    BEGIN
        PERFORM {{outbox}}.letta_emit(event_type, NEW.agent_id, NEW.organization_id, jsonb_build_object(
            'step_id', NEW.id,
            'run_id', NEW.run_id,
            'agent_id', NEW.agent_id,
            'status', lower(new_status),
            'stop_reason', NEW.stop_reason,
            'model', NEW.model,
            'provider_name', NEW.provider_name,
            'usage', jsonb_build_object(
                'prompt_tokens', NEW.prompt_tokens,
                'completion_tokens', NEW.completion_tokens,
                'total_tokens', NEW.total_tokens),
            'error_type', NEW.error_type,
            'error_message', left(NEW.error_data::jsonb ->> 'message', 500)));
    EXCEPTION WHEN OTHERS THEN
        PERFORM {{outbox}}.letta_record_error(TG_TABLE_NAME, TG_OP, SQLSTATE, SQLERRM);
    END;
    RETURN NULL;
END
$$;

-- runs: agent.run.completed on entering completed, failed or cancelled, again on a
-- second terminal transition (completed → cancelled) with previous_status.
CREATE OR REPLACE FUNCTION {{outbox}}.letta_runs() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    previous text;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF OLD.status IS NOT DISTINCT FROM NEW.status THEN
            RETURN NULL;
        END IF;
        previous := OLD.status;
    END IF;
    IF NEW.status NOT IN ('completed', 'failed', 'cancelled') THEN
        RETURN NULL;
    END IF;
    BEGIN
        PERFORM {{outbox}}.letta_emit('agent.run.completed', NEW.agent_id, NEW.organization_id, jsonb_build_object(
            'run_id', NEW.id,
            'agent_id', NEW.agent_id,
            'status', NEW.status,
            'previous_status', previous,
            'stop_reason', NEW.stop_reason,
            'completed_at', NEW.completed_at AT TIME ZONE 'UTC',
            'background', NEW.background,
            'has_callback', NEW.callback_url IS NOT NULL,
            'run_type', NEW.metadata_::jsonb ->> 'run_type',
            'error', left(NEW.metadata_::jsonb ->> 'error', 500),
            'ttft_ns', NEW.ttft_ns,
            'total_duration_ns', NEW.total_duration_ns));
    EXCEPTION WHEN OTHERS THEN
        PERFORM {{outbox}}.letta_record_error(TG_TABLE_NAME, TG_OP, SQLSTATE, SQLERRM);
    END;
    RETURN NULL;
END
$$;

-- runs with a callback_url: when a run first reaches a terminal status, a River
-- job (outboxd.letta_callback) is inserted in Letta's transaction; the daemon
-- POSTs Letta's callback body, signed and retried, and writes the outcome back to
-- the run's callback_* columns (which does not fire the status triggers).
CREATE OR REPLACE FUNCTION {{outbox}}.letta_run_callback() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.callback_url IS NULL OR NEW.status NOT IN ('completed', 'failed', 'cancelled')
        OR (TG_OP = 'UPDATE' AND OLD.status IN ('completed', 'failed', 'cancelled')) THEN
        RETURN NULL;
    END IF;
    BEGIN
        IF EXISTS (SELECT 1 FROM {{outbox}}.letta_install AS i WHERE i.callbacks) THEN
            INSERT INTO {{outbox}}.river_job (args, kind, max_attempts, queue)
            VALUES (jsonb_build_object('letta_schema', '{{letta}}', 'run_id', NEW.id), 'outboxd.letta_callback', 8, 'delivery');
        END IF;
    EXCEPTION WHEN OTHERS THEN
        PERFORM {{outbox}}.letta_record_error(TG_TABLE_NAME, TG_OP, SQLSTATE, SQLERRM);
    END;
    RETURN NULL;
END
$$;

-- jobs: agent.job.completed on entering a terminal status. Jobs have no agent.
CREATE OR REPLACE FUNCTION {{outbox}}.letta_jobs() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    previous text;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF OLD.status IS NOT DISTINCT FROM NEW.status THEN
            RETURN NULL;
        END IF;
        previous := OLD.status;
    END IF;
    IF NEW.status NOT IN ('completed', 'failed', 'cancelled', 'expired') THEN
        RETURN NULL;
    END IF;
    BEGIN
        PERFORM {{outbox}}.letta_emit('agent.job.completed', NULL, NEW.organization_id, jsonb_build_object(
            'job_id', NEW.id,
            'job_type', NEW.job_type,
            'user_id', NEW.user_id,
            'status', NEW.status,
            'previous_status', previous,
            'completed_at', NEW.completed_at AT TIME ZONE 'UTC',
            'has_callback', NEW.callback_url IS NOT NULL));
    EXCEPTION WHEN OTHERS THEN
        PERFORM {{outbox}}.letta_record_error(TG_TABLE_NAME, TG_OP, SQLSTATE, SQLERRM);
    END;
    RETURN NULL;
END
$$;

-- tools_agents INSERT: agent.tool.attached. AFTER triggers do not fire for rows an
-- ON CONFLICT DO NOTHING skipped, so a repeated attach publishes nothing.
CREATE OR REPLACE FUNCTION {{outbox}}.letta_tool_attached() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    agent_org text;
    agent_created timestamptz;
    tool_name text;
    tool_type text;
BEGIN
    BEGIN
        SELECT a.organization_id, a.created_at INTO agent_org, agent_created FROM {{letta}}.agents AS a WHERE a.id = NEW.agent_id;
        SELECT t.name, t.tool_type INTO tool_name, tool_type FROM {{letta}}.tools AS t WHERE t.id = NEW.tool_id;
        PERFORM {{outbox}}.letta_emit('agent.tool.attached', NEW.agent_id, agent_org, jsonb_build_object(
            'agent_id', NEW.agent_id,
            'tool_id', NEW.tool_id,
            'tool_name', tool_name,
            'tool_type', tool_type,
            -- Base tools attached while the agent is created, in the same transaction.
            'agent_created_in_same_tx', agent_created IS NOT DISTINCT FROM now()));
    EXCEPTION WHEN OTHERS THEN
        PERFORM {{outbox}}.letta_record_error(TG_TABLE_NAME, TG_OP, SQLSTATE, SQLERRM);
    END;
    RETURN NULL;
END
$$;

-- tools_agents DELETE: agent.tool.detached, also when deleting the agent or the
-- tool cascades here (flagged agent_deleted / tool_deleted).
CREATE OR REPLACE FUNCTION {{outbox}}.letta_tool_detached() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    agent_org text;
    agent_found boolean;
    tool_org text;
    tool_name text;
    tool_found boolean;
BEGIN
    BEGIN
        SELECT a.organization_id, true INTO agent_org, agent_found FROM {{letta}}.agents AS a WHERE a.id = OLD.agent_id;
        SELECT t.organization_id, t.name, true INTO tool_org, tool_name, tool_found FROM {{letta}}.tools AS t WHERE t.id = OLD.tool_id;
        PERFORM {{outbox}}.letta_emit('agent.tool.detached', OLD.agent_id, coalesce(agent_org, tool_org), jsonb_build_object(
            'agent_id', OLD.agent_id,
            'tool_id', OLD.tool_id,
            'tool_name', tool_name,
            'agent_deleted', agent_found IS NULL,
            'tool_deleted', tool_found IS NULL));
    EXCEPTION WHEN OTHERS THEN
        PERFORM {{outbox}}.letta_record_error(TG_TABLE_NAME, TG_OP, SQLSTATE, SQLERRM);
    END;
    RETURN NULL;
END
$$;

-- messages INSERT: agent.message.sent for an assistant message of a step, and one
-- tool.execution.completed per tool return of a tool message. Errored rows
-- (is_err) and the bootstrap messages of a new agent (no step) publish nothing.
CREATE OR REPLACE FUNCTION {{outbox}}.letta_messages() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tool_return jsonb;
    call_id text;
    resolved_name text;
    resolved_id text;
BEGIN
    IF NEW.is_err IS TRUE THEN
        RETURN NULL;
    END IF;
    BEGIN
        IF NEW.role = 'assistant' AND NEW.step_id IS NOT NULL THEN
            PERFORM {{outbox}}.letta_emit('agent.message.sent', NEW.agent_id, NEW.organization_id, jsonb_build_object(
                'message_id', NEW.id,
                'agent_id', NEW.agent_id,
                'run_id', NEW.run_id,
                'step_id', NEW.step_id,
                'sequence_id', NEW.sequence_id,
                'content_types', (SELECT jsonb_agg(DISTINCT part ->> 'type') FROM jsonb_array_elements(coalesce(NEW.content::jsonb, '[]')) AS part),
                'tool_call_count', jsonb_array_length(coalesce(NEW.tool_calls::jsonb, '[]'))));
        ELSIF NEW.role = 'tool' THEN
            FOR tool_return IN
                SELECT r FROM jsonb_array_elements(
                    CASE WHEN jsonb_typeof(NEW.tool_returns::jsonb) = 'array' AND jsonb_array_length(NEW.tool_returns::jsonb) > 0
                         THEN NEW.tool_returns::jsonb
                         ELSE jsonb_build_array(jsonb_build_object('tool_call_id', NEW.tool_call_id)) END) AS r
            LOOP
                call_id := tool_return ->> 'tool_call_id';
                -- The tool's name from the assistant's call with this id in the same step,
                -- else the message's own name; its id from the organization's tools.
                SELECT c -> 'function' ->> 'name' INTO resolved_name
                FROM {{letta}}.messages AS m, jsonb_array_elements(coalesce(m.tool_calls::jsonb, '[]')) AS c
                WHERE m.step_id = NEW.step_id AND m.role = 'assistant' AND c ->> 'id' = call_id
                LIMIT 1;
                resolved_name := coalesce(resolved_name, NEW.name);
                SELECT t.id INTO resolved_id FROM {{letta}}.tools AS t
                WHERE t.name = resolved_name AND t.organization_id IS NOT DISTINCT FROM NEW.organization_id
                LIMIT 1;
                PERFORM {{outbox}}.letta_emit('tool.execution.completed', NEW.agent_id, NEW.organization_id, jsonb_build_object(
                    'message_id', NEW.id,
                    'agent_id', NEW.agent_id,
                    'run_id', NEW.run_id,
                    'step_id', NEW.step_id,
                    'tool_call_id', call_id,
                    'status', tool_return ->> 'status',
                    'tool_name', resolved_name,
                    'tool_id', resolved_id));
                resolved_name := NULL;
                resolved_id := NULL;
            END LOOP;
        END IF;
    EXCEPTION WHEN OTHERS THEN
        PERFORM {{outbox}}.letta_record_error(TG_TABLE_NAME, TG_OP, SQLSTATE, SQLERRM);
    END;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS outboxd_steps ON {{letta}}.steps;
CREATE TRIGGER outboxd_steps AFTER INSERT OR UPDATE OF status ON {{letta}}.steps
    FOR EACH ROW EXECUTE FUNCTION {{outbox}}.letta_steps();
DROP TRIGGER IF EXISTS outboxd_runs ON {{letta}}.runs;
CREATE TRIGGER outboxd_runs AFTER INSERT OR UPDATE OF status ON {{letta}}.runs
    FOR EACH ROW EXECUTE FUNCTION {{outbox}}.letta_runs();
DROP TRIGGER IF EXISTS outboxd_run_callback ON {{letta}}.runs;
CREATE TRIGGER outboxd_run_callback AFTER INSERT OR UPDATE OF status ON {{letta}}.runs
    FOR EACH ROW EXECUTE FUNCTION {{outbox}}.letta_run_callback();
DROP TRIGGER IF EXISTS outboxd_jobs ON {{letta}}.jobs;
CREATE TRIGGER outboxd_jobs AFTER INSERT OR UPDATE OF status ON {{letta}}.jobs
    FOR EACH ROW EXECUTE FUNCTION {{outbox}}.letta_jobs();
DROP TRIGGER IF EXISTS outboxd_tool_attached ON {{letta}}.tools_agents;
CREATE TRIGGER outboxd_tool_attached AFTER INSERT ON {{letta}}.tools_agents
    FOR EACH ROW EXECUTE FUNCTION {{outbox}}.letta_tool_attached();
DROP TRIGGER IF EXISTS outboxd_tool_detached ON {{letta}}.tools_agents;
CREATE TRIGGER outboxd_tool_detached AFTER DELETE ON {{letta}}.tools_agents
    FOR EACH ROW EXECUTE FUNCTION {{outbox}}.letta_tool_detached();
DROP TRIGGER IF EXISTS outboxd_messages ON {{letta}}.messages;
CREATE TRIGGER outboxd_messages AFTER INSERT ON {{letta}}.messages
    FOR EACH ROW EXECUTE FUNCTION {{outbox}}.letta_messages();
