// Package lettatest reproduces, for tests, the parts of Letta's database schema
// that outboxd's Letta triggers sit on, written from Letta's migrations (see
// docs/letta.md): column types, enums and foreign-key actions as Letta has them.
package lettatest

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// ddl reproduces the parts of Letta's schema the triggers touch, with Letta's
// types: the stepstatus enum with upper-case labels, json (not jsonb) columns,
// timestamps without time zone for completed_at, tools_agents without a primary
// key, and Letta's foreign-key actions. %[1]s is the schema.
const ddl = `
CREATE SCHEMA IF NOT EXISTS %[1]s;
CREATE TYPE %[1]s.stepstatus AS ENUM ('PENDING', 'SUCCESS', 'FAILED', 'CANCELLED');
CREATE TABLE %[1]s.agents (
    id varchar PRIMARY KEY, name varchar NOT NULL, organization_id varchar NOT NULL,
    agent_type varchar, last_stop_reason varchar, message_ids json,
    created_at timestamptz DEFAULT now(), updated_at timestamptz DEFAULT now());
CREATE TABLE %[1]s.tools (
    id varchar PRIMARY KEY, name varchar NOT NULL, tool_type varchar NOT NULL, organization_id varchar NOT NULL,
    json_schema json, created_at timestamptz DEFAULT now(),
    CONSTRAINT uix_name_organization UNIQUE (name, organization_id));
CREATE TABLE %[1]s.tools_agents (
    agent_id varchar NOT NULL REFERENCES %[1]s.agents (id) ON DELETE CASCADE,
    tool_id varchar NOT NULL REFERENCES %[1]s.tools (id) ON DELETE CASCADE,
    CONSTRAINT unique_agent_tool UNIQUE (agent_id, tool_id));
CREATE TABLE %[1]s.runs (
    id varchar PRIMARY KEY, status varchar NOT NULL, completed_at timestamp, stop_reason varchar,
    background boolean, metadata_ json, request_config json,
    agent_id varchar NOT NULL REFERENCES %[1]s.agents (id), organization_id varchar NOT NULL,
    callback_url varchar, callback_sent_at timestamp, callback_status_code integer, callback_error varchar,
    ttft_ns bigint, total_duration_ns bigint, conversation_id varchar,
    created_at timestamptz DEFAULT now(), updated_at timestamptz DEFAULT now());
CREATE TABLE %[1]s.steps (
    id varchar PRIMARY KEY, agent_id varchar, run_id varchar REFERENCES %[1]s.runs (id) ON DELETE SET NULL,
    organization_id varchar, project_id varchar, provider_name varchar, model varchar, model_handle varchar,
    prompt_tokens integer NOT NULL DEFAULT 0, completion_tokens integer NOT NULL DEFAULT 0, total_tokens integer NOT NULL DEFAULT 0,
    cached_input_tokens integer, reasoning_tokens integer,
    stop_reason varchar, status %[1]s.stepstatus, error_type varchar, error_data json,
    created_at timestamptz DEFAULT now(), updated_at timestamptz DEFAULT now());
CREATE SEQUENCE %[1]s.message_seq_id;
CREATE TABLE %[1]s.messages (
    id varchar PRIMARY KEY, agent_id varchar NOT NULL REFERENCES %[1]s.agents (id) ON DELETE CASCADE,
    organization_id varchar NOT NULL, role varchar NOT NULL, content json, tool_calls json NOT NULL,
    tool_returns json, tool_call_id varchar, name varchar,
    step_id varchar REFERENCES %[1]s.steps (id) ON DELETE SET NULL,
    run_id varchar REFERENCES %[1]s.runs (id) ON DELETE SET NULL,
    conversation_id varchar, is_err boolean,
    sequence_id bigint NOT NULL DEFAULT nextval('%[1]s.message_seq_id') UNIQUE,
    created_at timestamptz);
CREATE TABLE %[1]s.jobs (
    id varchar PRIMARY KEY, user_id varchar NOT NULL, organization_id varchar, status varchar NOT NULL,
    job_type varchar NOT NULL, completed_at timestamp, metadata_ json, callback_url varchar,
    callback_sent_at timestamp, callback_status_code integer, callback_error varchar,
    created_at timestamptz DEFAULT now(), updated_at timestamptz DEFAULT now());
`

// DDL returns the statements that create Letta's tables in schema (created if
// missing).
func DDL(schema string) string { return fmt.Sprintf(ddl, schema) }

// Create makes Letta's tables in schema.
func Create(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	_, err := pool.Exec(ctx, DDL(schema))
	return err
}
