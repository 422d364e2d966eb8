package letta_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/letta"
	"github.com/outboxd/outboxd/outbox/outboxtest"
)

// Letta builds with per-agent webhook columns get an agent-scoped subscription
// kept in line with them.
func TestAgentWebhookColumnsKeepASubscriptionInSync(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := b.pool.Exec(b.ctx, "ALTER TABLE "+b.letta+".agents ADD COLUMN webhook_url varchar, ADD COLUMN webhook_secret varchar, "+
		"ADD COLUMN webhook_events json, ADD COLUMN webhook_enabled boolean DEFAULT true")
	require.NoError(t, err)
	b.install(t)

	rcv := newReceiver(t, func(int64) int { return http.StatusNoContent })
	store := b.startDaemon(t, outboxtest.Keyring(t))
	subscription := func() *outbox.Subscription {
		sub, err := store.AgentWebhookGet(b.ctx, "agent-1")
		if errors.Is(err, outbox.ErrNotFound) {
			return nil
		}
		require.NoError(t, err)
		return sub
	}

	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	b.lettaTx(t, `INSERT INTO agents (id, name, organization_id, webhook_url, webhook_secret, webhook_events)
		VALUES ('agent-1', 'helper', 'org-1', '`+rcv.server.URL+`', '`+secret+`', '["agent.run.completed"]')`,
		`INSERT INTO runs (id, status, agent_id, organization_id) VALUES ('run-1', 'created', 'agent-1', 'org-1')`)
	require.Eventually(t, func() bool { return subscription() != nil }, 15*time.Second, 20*time.Millisecond)
	sub := subscription()
	require.Equal(t, rcv.server.URL, sub.URL)
	require.Equal(t, []string{"agent.run.completed"}, sub.EventTypes)
	require.Equal(t, "org-1", sub.OrganizationID)

	// The agent's events reach the webhook, signed with the agent's secret.
	b.lettaTx(t, `UPDATE runs SET status = 'completed' WHERE id = 'run-1'`)
	req := rcv.next(t)
	verifier, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	require.NoError(t, verifier.Verify(req.body, req.header))

	// Disabling, then removing the URL.
	b.lettaTx(t, `UPDATE agents SET webhook_enabled = false WHERE id = 'agent-1'`)
	require.Eventually(t, func() bool { s := subscription(); return s != nil && !s.Enabled }, 15*time.Second, 20*time.Millisecond)
	b.lettaTx(t, `UPDATE agents SET webhook_url = NULL WHERE id = 'agent-1'`)
	require.Eventually(t, func() bool { return subscription() == nil }, 15*time.Second, 20*time.Millisecond)

	st, err := letta.ReadStatus(b.ctx, b.pool, b.schema)
	require.NoError(t, err)
	require.Zero(t, st.ErrorCount)
}
