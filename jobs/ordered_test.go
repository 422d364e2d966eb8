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
	// Two daemons claim side by side, so lines are fed by both at once.
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
	requests := rcv.RequireInOrder(t, 0)
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
	// The next one goes as soon as the last attempt has failed, before River
	// records it dead.
	require.Eventually(t, func() bool { return len(dead(subFor[outbox.OnDeadSkip])) == 1 }, 5*time.Second, 10*time.Millisecond)
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

// Disabling an ordered subscription pauses its lines where they are; enabling
// resumes them at once, and recovering what it missed while disabled puts those
// events in their place: the receiver gets every event, in publish order.
func TestOrderedLinePausesWhileDisabledAndResumesInOrder(t *testing.T) {
	t.Parallel()
	b := setupDaemon(t, func(c *Config) { c.Delivery.Circuit.Threshold = 1_000_000 })
	held, release := make(chan struct{}, 1), make(chan struct{})
	var holding atomic.Bool
	holding.Store(true)
	rcv := newTestReceiver(t, func(_ int64, _ *http.Request, body []byte) reply {
		if strings.Contains(string(body), `"i":1`) && holding.Load() {
			held <- struct{}{}
			<-release
			return reply{status: http.StatusServiceUnavailable}
		}
		return reply{}
	})
	start := time.Now()
	sub := outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{
		URL: rcv.server.URL, Ordering: outbox.OrderingAgent, RetrySchedule: outbox.RetrySchedule{10 * time.Millisecond, 10 * time.Millisecond},
	})
	var ids []string
	publish := func(i int) {
		ids = append(ids, outboxtest.Event(b.ctx, t, b.store, &outboxtest.EventOpts{AgentID: "agent-1", Payload: map[string]int{"i": i}}).ID)
	}
	for i := range 4 {
		publish(i)
	}
	delivery := func(eventID string) *outbox.Delivery {
		list, err := b.store.DeliveryList(b.ctx, &outbox.DeliveryListParams{SubscriptionID: sub.ID, EventID: eventID})
		require.NoError(t, err)
		if len(list) == 0 {
			return nil
		}
		return list[0]
	}
	delivered := func() []string {
		list, err := b.store.DeliveryList(b.ctx, &outbox.DeliveryListParams{SubscriptionID: sub.ID, State: outbox.DeliveryDelivered})
		require.NoError(t, err)
		slices.SortFunc(list, func(a, b *outbox.Delivery) int { return a.DeliveredAt.Compare(*b.DeliveredAt) })
		var got []string
		for _, d := range list {
			got = append(got, d.EventID)
		}
		return got
	}

	// The second event is in flight (so the first was delivered) when the
	// subscription is disabled; its attempt fails. The relay may claim the later
	// events after that one went out: wait until they are in the line behind it
	// (fanned out while disabled, they would have no delivery).
	<-held
	require.Eventually(t, func() bool {
		for _, id := range ids[2:4] {
			if d := delivery(id); d == nil || d.State != outbox.DeliveryPending {
				return false
			}
		}
		return true
	}, 10*time.Second, 10*time.Millisecond)
	disabled, err := b.store.SubscriptionDisable(b.ctx, sub.ID, "maintenance")
	require.NoError(t, err)
	require.True(t, disabled)
	holding.Store(false)
	close(release)
	publish(4) // while disabled: no delivery is made for it

	// The line pauses: its head looks again only every 30 s, the rest wait their turn.
	require.Eventually(t, func() bool {
		head := delivery(ids[1])
		return head.State == outbox.DeliveryRetrying && head.NextAttemptAt != nil && time.Until(*head.NextAttemptAt) > 10*time.Second
	}, 10*time.Second, 10*time.Millisecond)
	for _, id := range ids[2:4] {
		waiting := delivery(id)
		require.Equal(t, outbox.DeliveryPending, waiting.State)
		require.Nil(t, waiting.NextAttemptAt, "waits for its turn, not for a time")
	}
	require.Nil(t, delivery(ids[4]))
	require.Equal(t, ids[:1], delivered())

	// A delivery waiting in its line cannot jump it.
	_, err = b.daemon.Operations().DeliveryRetry(b.ctx, delivery(ids[3]).ID)
	require.ErrorIs(t, err, outbox.ErrConflict)

	// Enabling resumes the line at once (well before the head's 30 s), and
	// recovery adds the missed event at its place.
	enabled, err := b.store.SubscriptionEnable(b.ctx, sub.ID)
	require.NoError(t, err)
	require.True(t, enabled)
	_, err = b.daemon.Operations().RecoveryStart(b.ctx, sub.ID, start, time.Now().Add(time.Minute))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(delivered()) == len(ids) }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, ids, delivered())
}

// A subscription that stops ordering lets its waiting deliveries go; deleting
// one cancels what waits in its lines (River would keep it forever).
func TestOrderedLinesReleasedOrCancelled(t *testing.T) {
	t.Parallel()
	b := setupDaemon(t, nil)
	rcv := newStuckReceiver(t)
	states := func(subscription string) map[outbox.DeliveryState]int {
		list, err := b.store.DeliveryList(b.ctx, &outbox.DeliveryListParams{SubscriptionID: subscription})
		require.NoError(t, err)
		counts := map[outbox.DeliveryState]int{}
		for _, d := range list {
			counts[d.State]++
		}
		return counts
	}
	// Two ordered subscriptions; each line's head hangs, three wait behind it.
	var subs []string
	for _, typ := range []string{"agent.kept.step", "agent.deleted.step"} {
		subs = append(subs, outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{
			URL: rcv.server.URL, Ordering: outbox.OrderingAgent, EventTypes: []string{typ},
		}).ID)
		outboxtest.Event(b.ctx, t, b.store, &outboxtest.EventOpts{Type: typ, AgentID: "agent-1", Payload: map[string]bool{"stuck": true}})
		for range 3 {
			outboxtest.Event(b.ctx, t, b.store, &outboxtest.EventOpts{Type: typ, AgentID: "agent-1"})
		}
	}
	for _, sub := range subs {
		require.Eventually(t, func() bool {
			s := states(sub)
			return s[outbox.DeliveryDelivering] == 1 && s[outbox.DeliveryPending] == 3
		}, 10*time.Second, 10*time.Millisecond)
	}

	none := outbox.OrderingNone
	_, err := b.store.SubscriptionUpdate(b.ctx, subs[0], &outbox.SubscriptionUpdateParams{Ordering: &none})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return states(subs[0])[outbox.DeliveryDelivered] == 3 }, 10*time.Second, 10*time.Millisecond)

	require.NoError(t, b.store.SubscriptionDelete(b.ctx, subs[1]))
	require.Equal(t, map[outbox.DeliveryState]int{outbox.DeliveryDelivering: 1, outbox.DeliveryCancelled: 3}, states(subs[1]))
}

// A line whose head disappears behind outboxd's back (deleted in the River UI,
// say) would wait forever; the sweep makes its next delivery due.
func TestOrderedSweepResumesAStalledLine(t *testing.T) {
	t.Parallel()
	b := setupDaemon(t, nil)
	rcv := newStuckReceiver(t)
	sub := outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{URL: rcv.server.URL, Ordering: outbox.OrderingAgent})
	head := outboxtest.Event(b.ctx, t, b.store, &outboxtest.EventOpts{AgentID: "agent-1", Payload: map[string]bool{"stuck": true}})
	next := outboxtest.Event(b.ctx, t, b.store, &outboxtest.EventOpts{AgentID: "agent-1"})
	var headDelivery *outbox.Delivery
	require.Eventually(t, func() bool {
		list, err := b.store.DeliveryList(b.ctx, &outbox.DeliveryListParams{SubscriptionID: sub.ID, EventID: head.ID, State: outbox.DeliveryDelivering})
		require.NoError(t, err)
		if len(list) == 1 {
			headDelivery = list[0]
		}
		return headDelivery != nil
	}, 10*time.Second, 10*time.Millisecond)
	// The relay may claim the second event after the head is already in flight:
	// until it is fanned out, waiting in the line behind the head, there is no line
	// for the sweep to find (and its fan-out would promote the line by itself).
	require.Eventually(t, func() bool {
		list, err := b.store.DeliveryList(b.ctx, &outbox.DeliveryListParams{SubscriptionID: sub.ID, EventID: next.ID, State: outbox.DeliveryPending})
		require.NoError(t, err)
		return len(list) == 1
	}, 10*time.Second, 10*time.Millisecond)

	n, err := b.store.OrderedSweep(b.ctx)
	require.NoError(t, err)
	require.Zero(t, n, "a line with its head in flight is not stalled")

	_, err = b.pool.Exec(b.ctx, "DELETE FROM "+b.store.Schema()+".river_job WHERE id = $1", headDelivery.ID)
	require.NoError(t, err)
	n, err = b.store.OrderedSweep(b.ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	require.Eventually(t, func() bool {
		list, err := b.store.DeliveryList(b.ctx, &outbox.DeliveryListParams{SubscriptionID: sub.ID, EventID: next.ID, State: outbox.DeliveryDelivered})
		require.NoError(t, err)
		return len(list) == 1
	}, 10*time.Second, 10*time.Millisecond)
}

// newStuckReceiver answers at once, but for requests whose event data has
// "stuck": true, which it holds until the test ends.
func newStuckReceiver(t *testing.T) *testReceiver {
	t.Helper()
	stuck := make(chan struct{})
	rcv := newTestReceiver(t, func(_ int64, _ *http.Request, body []byte) reply {
		if strings.Contains(string(body), `"stuck":true`) {
			<-stuck
		}
		return reply{}
	})
	t.Cleanup(func() { close(stuck) }) // before the receiver closes: cleanups run last first
	return rcv
}
