package outbox

import "encoding/json"

// EventTypeInfo describes one event type outboxd itself produces: what the
// portal's event catalog shows. docs/events.md documents the same types with
// the same examples; a test keeps the two in step.
type EventTypeInfo struct {
	Type        string          `json:"type"`
	Description string          `json:"description"`
	Example     json.RawMessage `json:"example"`
}

// EventCatalog lists the event types outboxd produces (the Letta triggers,
// test sends and operational events), in the order of docs/events.md.
var EventCatalog = []EventTypeInfo{
	{"agent.step.completed", "A Letta step reached SUCCESS.", json.RawMessage(`{"step_id": "step-1", "run_id": "run-1", "agent_id": "agent-1", "status": "success", "stop_reason": "end_turn", "model": "gpt-4o-mini", "provider_name": "openai", "usage": {"prompt_tokens": 1834, "completion_tokens": 212, "total_tokens": 2046}}`)},
	{"agent.step.failed", "A Letta step reached FAILED; error_type and a message cut to 500 characters.", json.RawMessage(`{"step_id": "step-2", "run_id": "run-1", "agent_id": "agent-1", "status": "failed", "stop_reason": "error", "model": "gpt-4o-mini", "error_type": "RateLimitError", "error_message": "rate limited", "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}`)},
	{"agent.message.sent", "An assistant message was stored for a step; fetch its content from Letta by message_id.", json.RawMessage(`{"message_id": "message-2", "agent_id": "agent-1", "run_id": "run-1", "step_id": "step-1", "sequence_id": 42, "content_types": ["reasoning", "text"], "tool_call_count": 2}`)},
	{"tool.execution.completed", "A tool call returned (one per tool return of a stored tool message).", json.RawMessage(`{"message_id": "message-3", "agent_id": "agent-1", "run_id": "run-1", "step_id": "step-1", "tool_call_id": "call-a", "status": "success", "tool_name": "calculator", "tool_id": "tool-calc"}`)},
	{"agent.tool.attached", "A tool was attached to an agent.", json.RawMessage(`{"agent_id": "agent-1", "tool_id": "tool-send", "tool_name": "send_message", "tool_type": "letta_core", "agent_created_in_same_tx": true}`)},
	{"agent.tool.detached", "A tool was detached from an agent (or the agent or tool was deleted).", json.RawMessage(`{"agent_id": "agent-1", "tool_id": "tool-calc", "agent_deleted": false, "tool_deleted": true}`)},
	{"agent.run.completed", "A run entered completed, failed or cancelled.", json.RawMessage(`{"run_id": "run-1", "agent_id": "agent-1", "status": "cancelled", "previous_status": "completed", "stop_reason": "end_turn", "completed_at": "2026-11-22T10:00:00+00:00", "background": true, "has_callback": true, "run_type": "send_message_async", "ttft_ns": 120000000}`)},
	{"agent.job.completed", "A job entered completed, failed, cancelled or expired (no agent_id).", json.RawMessage(`{"job_id": "job-1", "job_type": "batch", "user_id": "user-1", "status": "completed", "previous_status": "running", "completed_at": "2026-11-22T11:00:00+00:00", "has_callback": false}`)},
	{"webhook.test", "Sent by a test send (portal, API or CLI); not stored.", json.RawMessage(`{"subscription_id": "sub_…", "message": "A test webhook from outboxd. Answer 2xx to acknowledge it."}`)},
	{"outboxd.subscription.disabled", "outboxd disabled a subscription (failing too long, or 410 Gone); only to subscriptions that name outboxd.* or this type.", json.RawMessage(`{"subscription_id": "sub_…", "url": "https://example.com/hooks", "reason": "every attempt failed since 2026-11-17T09:12:00Z; last: receiver answered 503 Service Unavailable", "failing_since": "2026-11-17T09:12:00Z", "failures": 1445}`)},
	{"outboxd.subscription.recovered", "A failing subscription delivered again.", nil},
	{"outboxd.delivery.exhausted", "A delivery used up its attempts and is dead.", nil},
}
