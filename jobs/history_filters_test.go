package jobs

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/outboxtest"
)

// The delivery history's agent and type filters find the deliveries the fan-out
// made, newest first, and only those: the agent from the args every delivery now
// carries (migration 13's index), the type by looking the event up.
func TestDeliveryHistoryFiltersByAgentAndType(t *testing.T) {
	t.Parallel()

	b := setupDaemon(t, nil)
	rcv := newTestReceiver(t, func(int64, *http.Request, []byte) reply { return reply{status: http.StatusOK} })
	outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{URL: rcv.server.URL + "/all"})
	outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{URL: rcv.server.URL + "/ordered", Ordering: outbox.OrderingAgent, EventTypes: []string{"agent.run.completed"}})

	stepA1 := outboxtest.Event(b.ctx, t, b.store, &outboxtest.EventOpts{Type: "agent.step.completed", AgentID: "agent-1"})
	runA2 := outboxtest.Event(b.ctx, t, b.store, &outboxtest.EventOpts{Type: "agent.run.completed", AgentID: "agent-2"})
	runA1 := outboxtest.Event(b.ctx, t, b.store, &outboxtest.EventOpts{Type: "agent.run.completed", AgentID: "agent-1"})
	noAgent := outboxtest.Event(b.ctx, t, b.store, &outboxtest.EventOpts{Type: "agent.step.completed"})
	b.waitFinal(t, 6)

	// Every delivery of an event with an agent carries it, ordered or not.
	var withAgent int
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT count(*) FROM "+b.store.Schema()+".river_job WHERE kind = $1 AND args ->> 'agent_id' = 'agent-1'", KindDelivery).Scan(&withAgent))
	require.Equal(t, 3, withAgent)

	list := func(params outbox.DeliveryListParams) []string {
		t.Helper()
		deliveries, err := b.store.DeliveryList(b.ctx, &params)
		require.NoError(t, err)
		ids := make([]string, len(deliveries))
		for i, d := range deliveries {
			if i > 0 {
				require.Greater(t, deliveries[i-1].ID, d.ID, "newest first")
			}
			ids[i] = d.EventID
		}
		return ids
	}
	require.ElementsMatch(t, []string{stepA1.ID, runA1.ID, runA1.ID}, list(outbox.DeliveryListParams{AgentID: "agent-1"}))
	require.ElementsMatch(t, []string{runA2.ID, runA2.ID}, list(outbox.DeliveryListParams{AgentID: "agent-2"}))
	require.Empty(t, list(outbox.DeliveryListParams{AgentID: "agent-3"}))
	require.ElementsMatch(t, []string{stepA1.ID, noAgent.ID}, list(outbox.DeliveryListParams{EventType: "agent.step.completed"}))
	require.ElementsMatch(t, []string{runA1.ID, runA1.ID}, list(outbox.DeliveryListParams{EventType: "agent.run.completed", AgentID: "agent-1"}))
	require.Len(t, list(outbox.DeliveryListParams{AgentID: "agent-1", Limit: 1}), 1)
	require.Empty(t, list(outbox.DeliveryListParams{EventType: "agent.tool.attached"}))
}
