package jobs

import (
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/outboxtest"
)

func TestOrderedLinesKeepPublishOrderAcrossDaemons(t *testing.T) {
	t.Parallel()
	noBreaker := func(c *Config) { c.Delivery.Circuit.Threshold = 1_000_000 } // random failures are the point here
	b := setupDaemon(t, noBreaker)
	startDaemon(t, b.ctx, b.store, outboxtest.NewPool(t, 8), noBreaker)
	rcv := outboxtest.NewOrderedReceiver(t, 0.2)
	retries := make(outbox.RetrySchedule, 30)
	for i := range retries {
		retries[i] = 10 * time.Millisecond
	}
	sub := outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{
		URL: rcv.Server.URL, Ordering: outbox.OrderingAgent, RetrySchedule: retries,
	})
	require.Equal(t, outbox.OrderingAgent, sub.Ordering)
	require.Equal(t, outbox.OnDeadBlock, sub.OnDead)

	// Two agents' lines, interleaved; each keeps its own order, and neither waits
	// for the other. (cmd/outboxd's TestOrderedDeliverySurvivesAKilledDaemon sends
	// 1,000 through daemon processes.)
	const perAgent = 100
	for i := range 2 * perAgent {
		agent := []string{"agent-a", "agent-b"}[i%2]
		rcv.Expect(agent, outboxtest.Event(b.ctx, t, b.store, &outboxtest.EventOpts{AgentID: agent}).ID)
	}
	rcv.WaitAccepted(t, "agent-a", perAgent, 90*time.Second)
	rcv.WaitAccepted(t, "agent-b", perAgent, 90*time.Second)
	requests := rcv.RequireInOrder(t)
	t.Logf("%d requests for %d events (20%% failed at random)", requests, 2*perAgent)
}

func TestOrderedLineSkipsOrBlocksOnADeadDelivery(t *testing.T) {
	t.Parallel()
	b := setupDaemon(t, func(c *Config) { c.Delivery.Circuit.Threshold = 1_000_000 })
	var healed atomic.Bool
	rcv := newTestReceiver(t, func(_ int64, _ *http.Request, body []byte) reply {
		if !healed.Load() && strings.Contains(string(body), `"poison":true`) {
			return reply{status: http.StatusBadRequest}
		}
		return reply{}
	})
	subFor := map[outbox.OnDead]string{}
	for _, onDead := range []outbox.OnDead{outbox.OnDeadSkip, outbox.OnDeadBlock} {
		subFor[onDead] = outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{
			URL: rcv.server.URL, Ordering: outbox.OrderingAgent, OnDead: onDead, RetrySchedule: outbox.RetrySchedule{10 * time.Millisecond},
			EventTypes: []string{"agent." + string(onDead) + ".*"},
		}).ID
	}
	// Each line: a good event, a poisoned one (refused until healed), a good one.
	publish := func(onDead outbox.OnDead) (first, poisoned, last string) {
		typ := "agent." + string(onDead) + ".step"
		first = outboxtest.Event(b.ctx, t, b.store, &outboxtest.EventOpts{Type: typ, AgentID: "agent-1"}).ID
		poisoned = outboxtest.Event(b.ctx, t, b.store, &outboxtest.EventOpts{Type: typ, AgentID: "agent-1", Payload: map[string]bool{"poison": true}}).ID
		last = outboxtest.Event(b.ctx, t, b.store, &outboxtest.EventOpts{Type: typ, AgentID: "agent-1"}).ID
		return first, poisoned, last
	}
	skipFirst, skipPoisoned, skipLast := publish(outbox.OnDeadSkip)
	blockFirst, blockPoisoned, blockLast := publish(outbox.OnDeadBlock)

	accepted := func(subscription string) []string { // in the order they were delivered
		deliveries, err := b.store.DeliveryList(b.ctx, &outbox.DeliveryListParams{SubscriptionID: subscription, State: outbox.DeliveryDelivered})
		require.NoError(t, err)
		slices.SortFunc(deliveries, func(a, b *outbox.Delivery) int { return a.DeliveredAt.Compare(*b.DeliveredAt) })
		var ids []string
		for _, d := range deliveries {
			ids = append(ids, d.EventID)
		}
		return ids
	}
	dead := func(subscription string) []*outbox.Delivery {
		deliveries, err := b.store.DeliveryList(b.ctx, &outbox.DeliveryListParams{SubscriptionID: subscription, State: outbox.DeliveryDead})
		require.NoError(t, err)
		return deliveries
	}
	// skip: the line goes on past the dead delivery.
	require.Eventually(t, func() bool { return len(accepted(subFor[outbox.OnDeadSkip])) == 2 }, 20*time.Second, 20*time.Millisecond)
	require.Equal(t, []string{skipFirst, skipLast}, accepted(subFor[outbox.OnDeadSkip]))
	require.Equal(t, skipPoisoned, dead(subFor[outbox.OnDeadSkip])[0].EventID)

	// block: it waits behind it...
	require.Eventually(t, func() bool { return len(dead(subFor[outbox.OnDeadBlock])) == 1 }, 20*time.Second, 20*time.Millisecond)
	stuck := dead(subFor[outbox.OnDeadBlock])[0]
	require.Equal(t, blockPoisoned, stuck.EventID)
	time.Sleep(time.Second) // what would go wrong, would go wrong by now
	require.Equal(t, []string{blockFirst}, accepted(subFor[outbox.OnDeadBlock]))

	// ...until an operator retries it, and then the rest follows in order.
	healed.Store(true)
	_, err := b.daemon.Operations().DeliveryRetry(b.ctx, stuck.ID)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(accepted(subFor[outbox.OnDeadBlock])) == 3 }, 20*time.Second, 20*time.Millisecond)
	require.Equal(t, []string{blockFirst, blockPoisoned, blockLast}, accepted(subFor[outbox.OnDeadBlock]))
}
