package outbox_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/migrations"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/outboxtest"
)

// exampleSetup connects to the test database and migrates a fresh schema for one
// example; cleanup drops it. Real programs use the default schema ("outbox") and
// the package-level outbox.PublishTx.
func exampleSetup(ctx context.Context) (pool *pgxpool.Pool, store *outbox.Store, cleanup func()) {
	pool, err := pgxpool.New(ctx, outboxtest.DatabaseURL())
	if err != nil {
		panic(err)
	}
	suffix := make([]byte, 6)
	if _, err := rand.Read(suffix); err != nil {
		panic(err)
	}
	schema := "ex_" + hex.EncodeToString(suffix)
	cleanup = func() {
		_, _ = pool.Exec(context.WithoutCancel(ctx), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
		pool.Close()
	}
	migrator, err := migrations.New(pool, &migrations.Config{Schema: schema})
	if err != nil {
		cleanup()
		panic(err)
	}
	if _, err := migrator.Up(ctx); err != nil {
		cleanup()
		panic(err)
	}
	store, err = outbox.NewStore(pool, &outbox.StoreConfig{Schema: schema})
	if err != nil {
		cleanup()
		panic(err)
	}
	return pool, store, cleanup
}

// Publish an event in the same transaction as the business change it announces:
// the event exists if and only if the transaction commits.
func ExampleStore_PublishTx() {
	ctx := context.Background()
	pool, store, cleanup := exampleSetup(ctx)
	defer cleanup()

	tx, err := pool.Begin(ctx)
	if err != nil {
		panic(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit

	// ... the business change, on tx ...
	event, err := store.PublishTx(ctx, tx, &outbox.PublishParams{
		Type:    "agent.step.completed",
		AgentID: "agent-123",
		Payload: json.RawMessage(`{"step_id":"step-456"}`),
	})
	if err != nil {
		panic(err)
	}
	_, err = store.EventGet(ctx, event.ID)
	fmt.Println("visible before commit:", !errors.Is(err, outbox.ErrNotFound))

	if err := tx.Commit(ctx); err != nil {
		panic(err)
	}
	got, err := store.EventGet(ctx, event.ID)
	if err != nil {
		panic(err)
	}
	fmt.Println("visible after commit:", got.ID == event.ID)
	fmt.Println("id:", strings.HasPrefix(got.ID, "evt_"), len(got.ID))
	fmt.Println("type:", got.Type)
	fmt.Println("agent:", got.AgentID)
	fmt.Println("payload:", string(got.Payload))
	// Output:
	// visible before commit: false
	// visible after commit: true
	// id: true 36
	// type: agent.step.completed
	// agent: agent-123
	// payload: {"step_id": "step-456"}
}

// A rolled-back transaction takes its events with it.
func ExampleStore_PublishTx_rollback() {
	ctx := context.Background()
	pool, store, cleanup := exampleSetup(ctx)
	defer cleanup()

	tx, err := pool.Begin(ctx)
	if err != nil {
		panic(err)
	}
	event, err := store.PublishTx(ctx, tx, &outbox.PublishParams{Type: "agent.step.failed"})
	if err != nil {
		panic(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		panic(err)
	}
	_, err = store.EventGet(ctx, event.ID)
	fmt.Println(err)
	// Output:
	// not found
}

// Bad input is a *outbox.ValidationError naming the field, and changes nothing.
func ExampleStore_PublishTx_validation() {
	ctx := context.Background()
	pool, store, cleanup := exampleSetup(ctx)
	defer cleanup()

	tx, err := pool.Begin(ctx)
	if err != nil {
		panic(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // the failed publish aborted it

	_, err = store.PublishTx(ctx, tx, &outbox.PublishParams{Type: "Agent.Step"})
	var verr *outbox.ValidationError
	if errors.As(err, &verr) {
		fmt.Println("field:", verr.Field)
		fmt.Println("message:", verr.Message)
	}
	// Output:
	// field: type
	// message: invalid event type 'Agent.Step'
}

// Publishing again with the same idempotency key returns the first event.
func ExampleStore_Publish_idempotencyKey() {
	ctx := context.Background()
	_, store, cleanup := exampleSetup(ctx)
	defer cleanup()

	params := &outbox.PublishParams{
		Type:           "agent.run.completed",
		OrganizationID: "org-1",
		IdempotencyKey: "run-789",
	}
	first, err := store.Publish(ctx, params)
	if err != nil {
		panic(err)
	}
	again, err := store.Publish(ctx, params)
	if err != nil {
		panic(err)
	}
	fmt.Println("same event:", first.ID == again.ID)
	// Output:
	// same event: true
}

// Producers in any language publish with plain SQL; outbox.publish() returns the
// event id. (Here the schema is a test schema rather than "outbox".)
func Example_sql() {
	ctx := context.Background()
	pool, store, cleanup := exampleSetup(ctx)
	defer cleanup()

	var eventID string
	err := pool.QueryRow(ctx, fmt.Sprintf(
		`SELECT %s.publish('agent.step.completed', '{"step_id":"step-456"}', agent_id => 'agent-123')`,
		store.Schema())).Scan(&eventID)
	if err != nil {
		panic(err)
	}
	event, err := store.EventGet(ctx, eventID)
	if err != nil {
		panic(err)
	}
	fmt.Println(event.Type, event.AgentID, string(event.Payload))
	// Output:
	// agent.step.completed agent-123 {"step_id": "step-456"}
}
