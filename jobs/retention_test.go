package jobs

import (
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/outboxtest"
)

func TestPruneKeepsEventsWithUnfinishedDeliveries(t *testing.T) {
	t.Parallel()
	ok := newTestReceiver(t, nil)
	failing := newTestReceiver(t, func(int64, *http.Request, []byte) reply { return reply{status: http.StatusServiceUnavailable} })
	b := setupDaemon(t, nil)
	outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{URL: ok.server.URL, EventTypes: []string{"agent.run.completed"}})
	outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{
		URL: failing.server.URL, EventTypes: []string{"agent.step.failed"}, RetrySchedule: outbox.RetrySchedule{time.Hour},
	})

	delivered := outboxtest.Event(b.ctx, t, b.store, &outboxtest.EventOpts{Type: "agent.run.completed"})
	b.waitFinal(t, 1)
	retrying := outboxtest.Event(b.ctx, t, b.store, &outboxtest.EventOpts{Type: "agent.step.failed"})
	failing.next(t)
	recent := outboxtest.Event(b.ctx, t, b.store, &outboxtest.EventOpts{Type: "agent.run.completed"})
	b.waitFinal(t, 1)
	// A retrying delivery is not final: wait until River has recorded the failure.
	require.Eventually(t, func() bool {
		d, err := b.store.DeliveryList(b.ctx, &outbox.DeliveryListParams{EventID: retrying.ID})
		require.NoError(t, err)
		return len(d) == 1 && d[0].State == outbox.DeliveryRetrying
	}, 10*time.Second, 10*time.Millisecond)

	_, err := b.pool.Exec(b.ctx, "UPDATE "+b.store.Schema()+".events SET created_at = now() - interval '8 days' WHERE event_id = ANY($1)",
		[]string{delivered.ID, retrying.ID})
	require.NoError(t, err)

	worker := &pruneWorker{store: b.store, retention: EventRetentionDefault, logger: slog.New(slog.DiscardHandler), now: time.Now}
	require.NoError(t, worker.Work(b.ctx, &river.Job[PruneArgs]{}))

	_, err = b.store.EventGet(b.ctx, delivered.ID)
	require.ErrorIs(t, err, outbox.ErrNotFound, "old and every delivery final: pruned")
	_, err = b.store.EventGet(b.ctx, retrying.ID)
	require.NoError(t, err, "old but a delivery is still retrying: kept")
	_, err = b.store.EventGet(b.ctx, recent.ID)
	require.NoError(t, err, "final but recent: kept")
}
