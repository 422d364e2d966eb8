// Package outbox is the core of outboxd: its types (Event, Subscription, Delivery),
// publishing inside a producer's transaction, and the Store that owns every query
// against outboxd's tables.
//
// # Publishing
//
// An event exists if and only if the producer's transaction commits. From Go:
//
//	tx, _ := pool.Begin(ctx)
//	// ... the business change ...
//	event, err := outbox.PublishTx(ctx, tx, &outbox.PublishParams{
//		Type:    "agent.step.completed",
//		AgentID: "agent-123",
//		Payload: json.RawMessage(`{"step_id":"step-456"}`),
//	})
//	// ...
//	tx.Commit(ctx)
//
// From any language, in SQL:
//
//	INSERT INTO outbox.events (type, agent_id, organization_id, payload)
//	VALUES ('agent.step.completed', 'agent-123', 'org-1', '{"step_id":"step-456"}');
//	-- or, returning the event id and honouring an idempotency key:
//	SELECT outbox.publish('agent.step.completed', '{"step_id":"step-456"}', agent_id => 'agent-123');
//
// Both paths check the same rules (a dotted lower-case type, a JSON object payload
// within outbox.settings.max_payload_bytes) and raise a clear error otherwise.
// outboxd assigns an event's id, event_id (the webhook-id), dispatched_at and
// fanned_out_at: an INSERT that sets one is refused, and so is an UPDATE that
// changes what a published event says.
//
// This package imports pgx and nothing of River, cobra or net/http servers, so
// producer services can import it cheaply.
//
// # Schema
//
// Everything lives in one Postgres schema, "outbox" unless configured otherwise.
// Queries are written against "outbox." and rewritten for another schema (see
// RewriteSchema), so they never depend on the session's search_path.
package outbox
