package letta_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/jackc/pgx/v5"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/letta"
	"github.com/outboxd/outboxd/outbox/outboxtest"
)

func (b *bundle) seedAgent(t *testing.T) {
	t.Helper()
	b.lettaTx(t,
		`INSERT INTO agents (id, name, organization_id) VALUES ('agent-1', 'helper', 'org-1')`,
		`INSERT INTO runs (id, status, agent_id, organization_id) VALUES ('run-1', 'created', 'agent-1', 'org-1')`)
}

func TestRolledBackLettaTransactionPublishesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.install(t)
	b.seedAgent(t)
	b.drain(t)

	err := pgx.BeginFunc(b.ctx, b.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(b.ctx, "UPDATE "+b.letta+".runs SET status = 'completed' WHERE id = 'run-1'")
		require.NoError(t, err)
		var n int
		require.NoError(t, tx.QueryRow(b.ctx, "SELECT count(*) FROM "+b.schema+".events").Scan(&n))
		require.Equal(t, 1, n, "the event exists inside Letta's transaction")
		return io.EOF // roll back
	})
	require.ErrorIs(t, err, io.EOF)
	require.Empty(t, b.drain(t))
}

func TestTriggerFailureNeverFailsLetta(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.install(t)
	b.seedAgent(t)
	b.drain(t)

	// Make every outbox insert fail: payloads over a 2-byte limit are refused.
	_, err := b.pool.Exec(b.ctx, "UPDATE "+b.schema+".settings SET max_payload_bytes = 2")
	require.NoError(t, err)
	b.lettaTx(t,
		`UPDATE runs SET status = 'completed' WHERE id = 'run-1'`,
		`INSERT INTO steps (id, agent_id, organization_id, status) VALUES ('step-1', 'agent-1', 'org-1', 'SUCCESS')`)

	var status string
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT status FROM "+b.letta+".runs WHERE id = 'run-1'").Scan(&status))
	require.Equal(t, "completed", status, "Letta's write went through")
	require.Empty(t, b.drain(t))

	st, err := letta.ReadStatus(b.ctx, b.pool, b.schema)
	require.NoError(t, err)
	require.EqualValues(t, 2, st.ErrorCount)
	require.Len(t, st.Errors, 2)
	require.Equal(t, "23514", st.Errors[0].SQLState)
	require.Contains(t, st.Errors[0].Message, "over the limit")
	require.ElementsMatch(t, []string{"runs", "steps"}, []string{st.Errors[0].Table, st.Errors[1].Table})
}

func TestInstall(t *testing.T) {
	t.Parallel()

	t.Run("IdempotentAndSelectsEvents", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.install(t)
		b.install(t, "agent.run.completed")
		st, err := letta.ReadStatus(b.ctx, b.pool, b.schema)
		require.NoError(t, err)
		require.True(t, st.Installed)
		require.Equal(t, letta.Version, st.Version)
		require.Equal(t, b.letta, st.LettaSchema)
		require.Equal(t, []string{"agent.run.completed"}, st.Events)

		b.seedAgent(t)
		b.lettaTx(t,
			`INSERT INTO steps (id, agent_id, organization_id, status) VALUES ('step-1', 'agent-1', 'org-1', 'SUCCESS')`,
			`UPDATE runs SET status = 'failed' WHERE id = 'run-1'`)
		events := b.drain(t)
		require.Len(t, events, 1, "only the selected event")
		require.Equal(t, "agent.run.completed", events[0].Type)
	})

	t.Run("BadInputChangesNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, tt := range []struct {
			config *letta.Config
			msg    string
		}{
			{&letta.Config{Schema: b.schema}, "the Letta schema is required"},
			{&letta.Config{Schema: b.schema, LettaSchema: "Robert'); DROP TABLE x;--"}, "use lower-case letters"},
			{&letta.Config{Schema: b.schema, LettaSchema: "no_such_schema"}, "no Letta tables in schema no_such_schema"},
			{&letta.Config{Schema: b.schema, LettaSchema: b.letta, Events: []string{"agent.slept"}}, `unknown Letta event "agent.slept"`},
			{&letta.Config{Schema: "t_missing_outbox", LettaSchema: b.letta}, "has no outboxd tables"},
		} {
			_, err := letta.Install(b.ctx, b.pool, tt.config)
			require.ErrorContains(t, err, tt.msg)
		}
		_, err := b.pool.Exec(b.ctx, "DROP TABLE "+b.letta+".jobs")
		require.NoError(t, err)
		_, err = letta.Install(b.ctx, b.pool, &letta.Config{Schema: b.schema, LettaSchema: b.letta})
		require.ErrorContains(t, err,
			"lacks Letta's tables jobs")
		st, err := letta.ReadStatus(b.ctx, b.pool, b.schema)
		require.NoError(t, err)
		require.False(t, st.Installed)
	})

	t.Run("UninstallRemovesEverything", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.install(t)
		require.NoError(t, letta.Uninstall(b.ctx, b.pool, &letta.Config{Schema: b.schema, LettaSchema: b.letta}))
		require.NoError(t, letta.Uninstall(b.ctx, b.pool, &letta.Config{Schema: b.schema, LettaSchema: b.letta}), "twice is fine")
		b.seedAgent(t)
		b.lettaTx(t, `UPDATE runs SET status = 'completed' WHERE id = 'run-1'`)
		require.Empty(t, b.drain(t))
		var triggers int
		require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
			JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND NOT t.tgisinternal`, b.letta).Scan(&triggers))
		require.Zero(t, triggers)
	})
}

// A Letta row change reaches an agent-scoped subscription as a verified webhook.
func TestLettaEventDeliveredEndToEnd(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.install(t)
	b.seedAgent(t)

	rcv := newReceiver(t, func(int64) int { return http.StatusNoContent })
	keyring := outboxtest.Keyring(t)
	store := b.startDaemon(t, keyring)
	sub, err := store.SubscriptionCreate(b.ctx, &outbox.SubscriptionCreateParams{URL: rcv.server.URL, AgentID: "agent-1", EventTypes: []string{"agent.run.completed"}})
	require.NoError(t, err)

	b.lettaTx(t, `UPDATE runs SET status = 'completed', stop_reason = 'end_turn' WHERE id = 'run-1'`)
	req := rcv.next(t)
	verifier, err := standardwebhooks.NewWebhook(sub.Secret.String())
	require.NoError(t, err)
	require.NoError(t, verifier.Verify(req.body, req.header))
	require.Contains(t, string(req.body), `"type":"agent.run.completed"`)
	require.Contains(t, string(req.body), `"run_id":"run-1"`)
}
