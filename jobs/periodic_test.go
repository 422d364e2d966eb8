package jobs

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/outboxtest"
)

// jobsOfKind counts the River jobs of a kind, whatever their state.
func (b *daemonBundle) jobsOfKind(t *testing.T, kind string) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT count(*) FROM "+b.store.Schema()+".river_job WHERE kind = $1", kind).Scan(&n))
	return n
}

// waitDecisions waits until River's leader has consulted gate n more times.
func waitDecisions(t *testing.T, gate *periodicGate, n int64) {
	t.Helper()
	target := gate.decisions.Load() + n
	require.Eventually(t, func() bool { return gate.decisions.Load() >= target }, 30*time.Second, 10*time.Millisecond,
		"River's periodic jobs did not come round")
}

// With no ordered line waiting, the ordered sweep leaves no job behind in
// River's list; once a line stalls, it runs and resumes it on its own.
func TestOrderedSweepRunsOnlyWhileLinesWait(t *testing.T) {
	t.Parallel()
	b := setupDaemon(t, func(c *Config) { c.orderedSweepInterval = 100 * time.Millisecond })
	ordinary := newTestReceiver(t, nil)
	outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{URL: ordinary.server.URL})
	outboxtest.Event(b.ctx, t, b.store, nil)
	ordinary.next(t)

	waitDecisions(t, b.daemon.sweepGate, 5)
	require.Zero(t, b.jobsOfKind(t, OrderedSweepArgs{}.Kind()), "no ordered line, no sweep")

	// A line whose head disappears behind outboxd's back.
	rcv := newStuckReceiver(t)
	sub := outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{
		URL: rcv.server.URL, Ordering: outbox.OrderingAgent, EventTypes: []string{"agent.ordered.step"},
	})
	head := outboxtest.Event(b.ctx, t, b.store, &outboxtest.EventOpts{Type: "agent.ordered.step", AgentID: "agent-1", Payload: map[string]bool{"stuck": true}})
	next := outboxtest.Event(b.ctx, t, b.store, &outboxtest.EventOpts{Type: "agent.ordered.step", AgentID: "agent-1"})
	deliveryOf := func(eventID string, state outbox.DeliveryState) *outbox.Delivery {
		list, err := b.store.DeliveryList(b.ctx, &outbox.DeliveryListParams{SubscriptionID: sub.ID, EventID: eventID, State: state})
		require.NoError(t, err)
		if len(list) == 0 {
			return nil
		}
		return list[0]
	}
	require.Eventually(t, func() bool {
		return deliveryOf(head.ID, outbox.DeliveryDelivering) != nil && deliveryOf(next.ID, outbox.DeliveryPending) != nil
	}, 10*time.Second, 10*time.Millisecond)
	_, err := b.pool.Exec(b.ctx, "DELETE FROM "+b.store.Schema()+".river_job WHERE id = $1", deliveryOf(head.ID, outbox.DeliveryDelivering).ID)
	require.NoError(t, err)

	require.Eventually(t, func() bool { return deliveryOf(next.ID, outbox.DeliveryDelivered) != nil }, 20*time.Second, 10*time.Millisecond,
		"the sweep resumed the line")
	require.Positive(t, b.jobsOfKind(t, OrderedSweepArgs{}.Kind()))
}

// Retention runs only once there are events old enough to prune (or partitions
// to make ahead, which the migration made).
func TestPruneRunsOnlyWithOldEvents(t *testing.T) {
	t.Parallel()
	const retention = 500 * time.Millisecond
	b := setupDaemon(t, func(c *Config) {
		c.RetentionInterval = 100 * time.Millisecond
		c.EventRetention = retention
	})
	waitDecisions(t, b.daemon.pruneGate, 5)
	require.Zero(t, b.jobsOfKind(t, PruneArgs{}.Kind()), "no event, no prune")

	rcv := newTestReceiver(t, nil)
	outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{URL: rcv.server.URL})
	// Today's partition is dropped only once the day is past the retention; an
	// event backdated by its producer is in the default partition, pruned row by row.
	var eventID string
	require.NoError(t, b.pool.QueryRow(b.ctx, fmt.Sprintf(
		`INSERT INTO %[1]s.events (type, created_at) VALUES ('agent.step.completed', '2001-01-01 00:00:00+00')
		RETURNING %[1]s.event_id(id, created_at)`, b.store.Schema())).Scan(&eventID))
	rcv.next(t)
	b.waitFinal(t, 1)
	require.Eventually(t, func() bool {
		_, err := b.store.EventGet(b.ctx, eventID)
		return err != nil
	}, 20*time.Second, 10*time.Millisecond, "pruned once older than the retention")
	_, err := b.store.EventGet(b.ctx, eventID)
	require.ErrorIs(t, err, outbox.ErrNotFound)
	require.Positive(t, b.jobsOfKind(t, PruneArgs{}.Kind()))
}
