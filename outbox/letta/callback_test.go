package letta_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/jobs"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/letta"
	"github.com/outboxd/outboxd/outbox/outboxtest"
)

// With --callbacks, a run's callback_url gets Letta's body from outboxd, signed
// and retried, and the outcome is written back to the run.
func TestRunCallbacksDeliveredAndWrittenBack(t *testing.T) {
	t.Parallel()
	b := setup(t)
	keyring := outboxtest.Keyring(t)

	_, err := letta.Install(b.ctx, b.pool, &letta.Config{Schema: b.schema, LettaSchema: b.letta, Callbacks: true})
	require.ErrorIs(t, err, outbox.ErrNoEncryptionKey, "callbacks are signed, so they need the key")
	result, err := letta.Install(b.ctx, b.pool, &letta.Config{Schema: b.schema, LettaSchema: b.letta, Callbacks: true, Keyring: keyring})
	require.NoError(t, err)
	require.NotNil(t, result.CallbackSecret)
	again, err := letta.Install(b.ctx, b.pool, &letta.Config{Schema: b.schema, LettaSchema: b.letta, Callbacks: true, Keyring: keyring})
	require.NoError(t, err)
	require.Nil(t, again.CallbackSecret, "the secret is made once and shown once")

	var calls atomic.Int64
	got := make(chan []byte, 10)
	headers := make(chan http.Header, 10)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusBadGateway) // the first attempt fails
			return
		}
		got <- body
		headers <- r.Header.Clone()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(receiver.Close)

	b.lettaTx(t,
		`INSERT INTO agents (id, name, organization_id) VALUES ('agent-1', 'helper', 'org-1')`,
		`INSERT INTO runs (id, status, agent_id, organization_id, metadata_, callback_url)
			VALUES ('run-1', 'created', 'agent-1', 'org-1', '{"run_type":"send_message_async"}', '`+receiver.URL+`')`,
		`INSERT INTO runs (id, status, agent_id, organization_id) VALUES ('run-2', 'created', 'agent-1', 'org-1')`)
	store, err := outbox.NewStore(b.pool, &outbox.StoreConfig{Schema: b.schema, Keyring: keyring, Guard: outboxtest.LoopbackGuard()})
	require.NoError(t, err)
	daemon, err := jobs.NewDaemon(outboxtest.NewPool(t, 6), &jobs.Config{
		Store: store, Guard: outboxtest.LoopbackGuard(), FetchPollInterval: 50 * time.Millisecond,
	})
	require.NoError(t, err)
	require.NoError(t, daemon.Start(b.ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, daemon.Stop(ctx))
	})

	b.lettaTx(t,
		`UPDATE runs SET status = 'completed', completed_at = '2026-11-22 10:00:00' WHERE id = 'run-1'`,
		`UPDATE runs SET status = 'completed' WHERE id = 'run-2'`) // no callback_url: nothing to send

	select {
	case body := <-got:
		var callback map[string]any
		require.NoError(t, json.Unmarshal(body, &callback))
		require.Equal(t, map[string]any{
			"run_id": "run-1", "status": "completed", "completed_at": "2026-11-22T10:00:00Z",
			"metadata": map[string]any{"run_type": "send_message_async"},
		}, callback, "Letta's callback body")
		verifier, err := standardwebhooks.NewWebhook(result.CallbackSecret.String())
		require.NoError(t, err)
		require.NoError(t, verifier.Verify(body, <-headers))
	case <-time.After(30 * time.Second):
		t.Fatal("the callback was not delivered")
	}

	require.Eventually(t, func() bool {
		var code *int
		require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT callback_status_code FROM "+b.letta+".runs WHERE id = 'run-1'").Scan(&code))
		return code != nil && *code == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond)
	var sentAt *time.Time
	var callbackErr *string
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT callback_sent_at, callback_error FROM "+b.letta+".runs WHERE id = 'run-1'").Scan(&sentAt, &callbackErr))
	require.NotNil(t, sentAt)
	require.Nil(t, callbackErr, "the error of the failed first attempt is cleared")
	require.EqualValues(t, 2, calls.Load())

	// Writing the callback back published no second run event.
	var runEvents int
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT count(*) FROM "+b.schema+".events WHERE type = 'agent.run.completed'").Scan(&runEvents))
	require.Equal(t, 2, runEvents)
}
