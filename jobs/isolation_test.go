package jobs

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/outboxtest"
)

// hangingReceiver holds every request until the test ends (or the daemon gives
// up), and records how many it held at once.
type hangingReceiver struct {
	*testReceiver
	mu      sync.Mutex
	open    int
	maxOpen int
	release chan struct{}
	once    sync.Once
}

// unblock answers every held request, and every later one at once.
func (h *hangingReceiver) unblock() { h.once.Do(func() { close(h.release) }) }

func newHangingReceiver(t *testing.T) *hangingReceiver {
	t.Helper()
	h := &hangingReceiver{release: make(chan struct{})}
	h.testReceiver = newTestReceiver(t, func(_ int64, r *http.Request, _ []byte) reply {
		h.mu.Lock()
		h.open++
		h.maxOpen = max(h.maxOpen, h.open)
		h.mu.Unlock()
		select {
		case <-h.release:
		case <-r.Context().Done():
		}
		h.mu.Lock()
		h.open--
		h.mu.Unlock()
		return reply{}
	})
	return h
}

func (h *hangingReceiver) most() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.maxOpen
}

func TestHangingEndpointHoldsOnlyItsShareOfWorkers(t *testing.T) {
	t.Parallel()
	const workers = 8 // default cap per subscription: half, 4
	b := setupDaemon(t, func(c *Config) {
		c.DeliveryWorkers = workers
		c.Delivery.RequestTimeout = time.Minute // it hangs for the whole test
	})
	hanging := newHangingReceiver(t)
	t.Cleanup(hanging.unblock) // before the daemon stops (cleanups run last-in first-out)
	healthy := newTestReceiver(t, nil)
	outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{URL: hanging.server.URL})
	outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{URL: healthy.server.URL})

	const n = 60
	for range n {
		outboxtest.Event(b.ctx, t, b.store, nil)
	}
	// Every healthy delivery arrives while the hanging endpoint holds its requests:
	// without a cap, its 60 deliveries would have taken all 8 workers.
	for range n {
		healthy.next(t)
	}
	require.Equal(t, 4, hanging.most(), "the hanging endpoint holds exactly its cap of workers")
	require.EqualValues(t, 4, hanging.count.Load(), "the rest wait without being attempted")

	// Once it answers, everything held back arrives, each at its first attempt:
	// waiting for a slot spent none.
	hanging.unblock()
	var delivered []*outbox.Delivery
	require.Eventually(t, func() bool {
		var err error
		delivered, err = b.store.DeliveryList(b.ctx, &outbox.DeliveryListParams{State: outbox.DeliveryDelivered, Limit: 1000})
		require.NoError(t, err)
		return len(delivered) == 2*n
	}, 30*time.Second, 50*time.Millisecond)
	for _, d := range delivered {
		require.Len(t, d.Attempts, 1)
	}
}

func TestMaxInFlightHoldsAcrossDaemons(t *testing.T) {
	t.Parallel()
	b := setupDaemon(t, func(c *Config) { c.Delivery.RequestTimeout = time.Minute })
	startDaemon(t, b.ctx, b.store, outboxtest.NewPool(t, 8), func(c *Config) { c.Delivery.RequestTimeout = time.Minute })
	hanging := newHangingReceiver(t)
	t.Cleanup(hanging.unblock)
	sub := outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{URL: hanging.server.URL, MaxInFlight: 3})
	require.Equal(t, 3, sub.MaxInFlight)

	for range 30 {
		outboxtest.Event(b.ctx, t, b.store, nil)
	}
	// Each daemon alone would allow 10 (half of 20 workers); together, with the
	// subscription's cap, they hold 3. Wait until the cap is reached and has held
	// for a while of deferrals.
	require.Eventually(t, func() bool { return hanging.count.Load() == 3 }, 10*time.Second, 10*time.Millisecond)
	// Wait until every other delivery has been deferred at least twice: each time
	// both daemons had free workers and refused it a slot.
	require.Eventually(t, func() bool {
		var waiting int
		err := b.pool.QueryRow(b.ctx, `SELECT count(*) FROM `+b.store.Schema()+`.river_job
			WHERE kind = 'outboxd.delivery' AND (metadata ->> 'snoozes')::int >= 2`).Scan(&waiting)
		require.NoError(t, err)
		return waiting == 27
	}, 20*time.Second, 50*time.Millisecond)
	require.Equal(t, 3, hanging.most())
	require.EqualValues(t, 3, hanging.count.Load())
}
