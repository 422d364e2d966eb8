package jobs

import (
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/outboxtest"
)

// A subscription limited to 5/s never gets more than 5 (+ a burst of one) in any
// second, with two daemons delivering, and the deferrals spend no attempt.
func TestRateLimitHoldsAcrossDaemons(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var arrivals []time.Time
	rcv := newTestReceiver(t, func(int64, *http.Request, []byte) reply {
		mu.Lock()
		arrivals = append(arrivals, time.Now())
		mu.Unlock()
		return reply{}
	})
	b := setupDaemon(t, nil)
	startDaemon(t, b.ctx, b.store, outboxtest.NewPool(t, 8), nil) // a second daemon shares the limit

	sub, err := b.store.SubscriptionCreate(b.ctx, &outbox.SubscriptionCreateParams{URL: rcv.server.URL, RateLimit: 5})
	require.NoError(t, err)
	require.Equal(t, 5, sub.RateLimit)
	const n = 20
	for range n {
		outboxtest.Event(b.ctx, t, b.store, nil)
	}
	for range n {
		rcv.next(t)
	}

	mu.Lock()
	got := slices.Clone(arrivals)
	mu.Unlock()
	slices.SortFunc(got, func(a, b time.Time) int { return a.Compare(b) })
	for i, start := range got {
		inWindow := 0
		for _, at := range got[i:] {
			if at.Sub(start) < time.Second {
				inWindow++
			}
		}
		require.LessOrEqual(t, inWindow, 6, "arrivals in the second from %s", start)
	}
	require.GreaterOrEqual(t, got[n-1].Sub(got[0]), 2500*time.Millisecond, "20 at 5/s take about 3 s")

	var deliveries []*outbox.Delivery
	require.Eventually(t, func() bool { // the last completions are recorded just after the receipts
		deliveries, err = b.store.DeliveryList(b.ctx, &outbox.DeliveryListParams{SubscriptionID: sub.ID, State: outbox.DeliveryDelivered})
		require.NoError(t, err)
		return len(deliveries) == n
	}, 10*time.Second, 20*time.Millisecond)
	for _, d := range deliveries {
		require.Len(t, d.Attempts, 1, "waiting for the limit is not an attempt")
	}
	// Both daemons delivered: the limit held across them, not within one.
	var daemons int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(DISTINCT attempted_by[cardinality(attempted_by)])
		FROM `+b.store.Schema()+`.river_job WHERE kind = 'outboxd.delivery' AND state = 'completed'`).Scan(&daemons))
	require.Equal(t, 2, daemons)
}
