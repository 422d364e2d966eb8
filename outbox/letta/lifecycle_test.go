package letta_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// A realistic Letta lifecycle, replayed statement by statement as Letta's managers
// issue them, with the exact events each produces.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	t.Run("DockerSchema", func(t *testing.T) {
		t.Parallel()
		b := setup(t) // Letta's tables in their own schema, search_path set to it
		b.install(t)
		replayLifecycle(t, b)
	})
	t.Run("Public", func(t *testing.T) {
		t.Parallel()
		b := setupIn(t, "public") // a bare install
		b.install(t)
		replayLifecycle(t, b)
	})
}

func replayLifecycle(t *testing.T, b *bundle) {
	t.Helper()
	type ev = published
	m := func(kv ...any) map[string]any {
		out := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i].(string)] = kv[i+1]
		}
		return out
	}

	// Tools exist; an agent is created with its base tools in one transaction.
	b.lettaTx(t,
		`INSERT INTO tools (id, name, tool_type, organization_id) VALUES
			('tool-send', 'send_message', 'letta_core', 'org-1'),
			('tool-search', 'web_search', 'external', 'org-1'),
			('tool-calc', 'calculator', 'custom', 'org-1')`)
	require.Empty(t, b.drain(t))
	b.lettaTx(t,
		`INSERT INTO agents (id, name, organization_id, agent_type) VALUES ('agent-1', 'helper', 'org-1', 'letta_v1_agent')`,
		`INSERT INTO tools_agents (agent_id, tool_id) VALUES ('agent-1', 'tool-send'), ('agent-1', 'tool-search') ON CONFLICT (agent_id, tool_id) DO NOTHING`,
		// Bootstrap messages of a new agent have no step: no event.
		`INSERT INTO messages (id, agent_id, organization_id, role, content, tool_calls) VALUES
			('message-0', 'agent-1', 'org-1', 'system', '[{"type":"text","text":"You are helpful."}]', '[]')`)
	require.Equal(t, []ev{
		{"agent.tool.attached", "agent-1", "org-1", m("agent_id", "agent-1", "tool_id", "tool-send", "tool_name", "send_message", "tool_type", "letta_core", "agent_created_in_same_tx", true)},
		{"agent.tool.attached", "agent-1", "org-1", m("agent_id", "agent-1", "tool_id", "tool-search", "tool_name", "web_search", "tool_type", "external", "agent_created_in_same_tx", true)},
	}, b.drain(t))

	// A repeated attach skipped by ON CONFLICT publishes only the new pair.
	b.lettaTx(t, `INSERT INTO tools_agents (agent_id, tool_id) VALUES ('agent-1', 'tool-send'), ('agent-1', 'tool-calc') ON CONFLICT (agent_id, tool_id) DO NOTHING`)
	require.Equal(t, []ev{
		{"agent.tool.attached", "agent-1", "org-1", m("agent_id", "agent-1", "tool_id", "tool-calc", "tool_name", "calculator", "tool_type", "custom", "agent_created_in_same_tx", false)},
	}, b.drain(t))

	// A run, and a step: PENDING (nothing), then SUCCESS (one event), then a
	// stop-reason-only update (nothing).
	b.lettaTx(t, `INSERT INTO runs (id, status, agent_id, organization_id, background, metadata_, callback_url)
		VALUES ('run-1', 'created', 'agent-1', 'org-1', true, '{"run_type":"send_message_async"}', 'https://example.com/cb')`)
	b.lettaTx(t, `INSERT INTO steps (id, agent_id, run_id, organization_id, model, provider_name, status)
		VALUES ('step-1', 'agent-1', 'run-1', 'org-1', 'gpt-4o-mini', 'openai', 'PENDING')`)
	require.Empty(t, b.drain(t))
	b.lettaTx(t, `UPDATE steps SET status = 'SUCCESS', prompt_tokens = 1834, completion_tokens = 212, total_tokens = 2046 WHERE id = 'step-1'`)
	b.lettaTx(t, `UPDATE steps SET stop_reason = 'end_turn' WHERE id = 'step-1'`)
	require.Equal(t, []ev{
		{"agent.step.completed", "agent-1", "org-1", m("step_id", "step-1", "run_id", "run-1", "agent_id", "agent-1", "status", "success",
			"model", "gpt-4o-mini", "provider_name", "openai",
			"usage", m("prompt_tokens", 1834.0, "completion_tokens", 212.0, "total_tokens", 2046.0))},
	}, b.drain(t))

	// A failed step, with the error type and a short message but no traceback.
	b.lettaTx(t, `INSERT INTO steps (id, agent_id, run_id, organization_id, model, status) VALUES ('step-2', 'agent-1', 'run-1', 'org-1', 'gpt-4o-mini', 'PENDING')`)
	b.lettaTx(t, `UPDATE steps SET status = 'FAILED', error_type = 'RateLimitError', stop_reason = 'error',
		error_data = '{"message":"rate limited","traceback":"Traceback (most recent call last): ..."}' WHERE id = 'step-2'`)
	require.Equal(t, []ev{
		{"agent.step.failed", "agent-1", "org-1", m("step_id", "step-2", "run_id", "run-1", "agent_id", "agent-1", "status", "failed",
			"stop_reason", "error", "model", "gpt-4o-mini", "error_type", "RateLimitError", "error_message", "rate limited",
			"usage", m("prompt_tokens", 0.0, "completion_tokens", 0.0, "total_tokens", 0.0))},
	}, b.drain(t))

	// One insert of user + assistant + tool messages with two tool returns.
	b.lettaTx(t, `INSERT INTO messages (id, agent_id, organization_id, role, content, tool_calls, tool_returns, tool_call_id, name, step_id, run_id) VALUES
		('message-1', 'agent-1', 'org-1', 'user', '[{"type":"text","text":"What is 2+2 and the news?"}]', '[]', NULL, NULL, NULL, 'step-1', 'run-1'),
		('message-2', 'agent-1', 'org-1', 'assistant', '[{"type":"reasoning","reasoning":"..."},{"type":"text","text":"Let me check."}]',
			'[{"id":"call-a","type":"function","function":{"name":"calculator","arguments":"{}"}},{"id":"call-b","type":"function","function":{"name":"web_search","arguments":"{}"}}]',
			NULL, NULL, NULL, 'step-1', 'run-1'),
		('message-3', 'agent-1', 'org-1', 'tool', '[]', '[]',
			'[{"tool_call_id":"call-a","status":"success","func_response":"4"},{"tool_call_id":"call-b","status":"error","stderr":"timeout"}]',
			'call-a', 'calculator', 'step-1', 'run-1')`)
	events := b.drain(t)
	require.Len(t, events, 3)
	require.Equal(t, "agent.message.sent", events[0].Type)
	require.Equal(t, "message-2", events[0].Payload["message_id"])
	require.ElementsMatch(t, []any{"reasoning", "text"}, events[0].Payload["content_types"])
	require.EqualValues(t, 2, events[0].Payload["tool_call_count"])
	require.NotContains(t, fmt.Sprint(events[0].Payload), "Let me check", "no transcripts")
	require.Equal(t, []ev{
		{"tool.execution.completed", "agent-1", "org-1", m("message_id", "message-3", "agent_id", "agent-1", "run_id", "run-1", "step_id", "step-1",
			"tool_call_id", "call-a", "status", "success", "tool_name", "calculator", "tool_id", "tool-calc")},
		{"tool.execution.completed", "agent-1", "org-1", m("message_id", "message-3", "agent_id", "agent-1", "run_id", "run-1", "step_id", "step-1",
			"tool_call_id", "call-b", "status", "error", "tool_name", "web_search", "tool_id", "tool-search")},
	}, events[1:])

	// An errored message publishes nothing.
	b.lettaTx(t, `INSERT INTO messages (id, agent_id, organization_id, role, content, tool_calls, step_id, is_err)
		VALUES ('message-4', 'agent-1', 'org-1', 'assistant', '[]', '[]', 'step-2', true)`)
	require.Empty(t, b.drain(t))

	// The run completes, its callback is written back (nothing), then it is cancelled.
	b.lettaTx(t, `UPDATE runs SET status = 'completed', stop_reason = 'end_turn', completed_at = '2026-11-22 10:00:00', ttft_ns = 120000000 WHERE id = 'run-1'`)
	b.lettaTx(t, `UPDATE runs SET callback_sent_at = '2026-11-22 10:00:01', callback_status_code = 200 WHERE id = 'run-1'`)
	b.lettaTx(t, `UPDATE runs SET status = 'cancelled' WHERE id = 'run-1'`)
	runPayload := func(status, previous string) map[string]any {
		return m("run_id", "run-1", "agent_id", "agent-1", "status", status, "previous_status", previous, "stop_reason", "end_turn",
			"completed_at", "2026-11-22T10:00:00+00:00", "background", true, "has_callback", true, "run_type", "send_message_async", "ttft_ns", 120000000.0)
	}
	require.Equal(t, []ev{
		{"agent.run.completed", "agent-1", "org-1", runPayload("completed", "created")},
		{"agent.run.completed", "agent-1", "org-1", runPayload("cancelled", "completed")},
	}, b.drain(t))

	// A job completes; jobs have no agent.
	b.lettaTx(t, `INSERT INTO jobs (id, user_id, organization_id, status, job_type) VALUES ('job-1', 'user-1', 'org-1', 'running', 'batch')`)
	require.Empty(t, b.drain(t))
	b.lettaTx(t, `UPDATE jobs SET status = 'completed', completed_at = '2026-11-22 11:00:00' WHERE id = 'job-1'`)
	require.Equal(t, []ev{
		{"agent.job.completed", "", "org-1", m("job_id", "job-1", "job_type", "batch", "user_id", "user-1", "status", "completed",
			"previous_status", "running", "completed_at", "2026-11-22T11:00:00+00:00", "has_callback", false)},
	}, b.drain(t))

	// A tool is detached; another is deleted (its attachment cascades, flagged).
	b.lettaTx(t, `DELETE FROM tools_agents WHERE agent_id = 'agent-1' AND tool_id = 'tool-search'`)
	b.lettaTx(t, `DELETE FROM tools WHERE id = 'tool-calc'`)
	require.Equal(t, []ev{
		{"agent.tool.detached", "agent-1", "org-1", m("agent_id", "agent-1", "tool_id", "tool-search", "tool_name", "web_search", "agent_deleted", false, "tool_deleted", false)},
		{"agent.tool.detached", "agent-1", "org-1", m("agent_id", "agent-1", "tool_id", "tool-calc", "agent_deleted", false, "tool_deleted", true)},
	}, b.drain(t))
}
