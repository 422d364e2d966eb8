package letta_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

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

	rcv := newReceiver(t, func(n int64) int {
		if n == 1 {
			return http.StatusBadGateway // the first attempt fails
		}
		return http.StatusOK
	})
	b.lettaTx(t,
		`INSERT INTO agents (id, name, organization_id) VALUES ('agent-1', 'helper', 'org-1')`,
		`INSERT INTO runs (id, status, agent_id, organization_id, metadata_, callback_url)
			VALUES ('run-1', 'created', 'agent-1', 'org-1', '{"run_type":"send_message_async"}', '`+rcv.server.URL+`')`,
		`INSERT INTO runs (id, status, agent_id, organization_id) VALUES ('run-2', 'created', 'agent-1', 'org-1')`)
	b.startDaemon(t, keyring)

	b.lettaTx(t,
		`UPDATE runs SET status = 'completed', completed_at = '2026-11-22 10:00:00' WHERE id = 'run-1'`,
		`UPDATE runs SET status = 'completed' WHERE id = 'run-2'`) // no callback_url: nothing to send

	req := rcv.next(t)
	var callback map[string]any
	require.NoError(t, json.Unmarshal(req.body, &callback))
	require.Equal(t, map[string]any{
		"run_id": "run-1", "status": "completed", "completed_at": "2026-11-22T10:00:00Z",
		"metadata": map[string]any{"run_type": "send_message_async"},
	}, callback, "Letta's callback body")
	verifier, err := standardwebhooks.NewWebhook(result.CallbackSecret.String())
	require.NoError(t, err)
	require.NoError(t, verifier.Verify(req.body, req.header))

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
	require.EqualValues(t, 2, rcv.count.Load())

	// Writing the callback back published no second run event.
	var runEvents int
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT count(*) FROM "+b.schema+".events WHERE type = 'agent.run.completed'").Scan(&runEvents))
	require.Equal(t, 2, runEvents)
}
