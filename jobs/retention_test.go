package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/outboxtest"
)

func TestRetentionDropsDaysWhoseEventsAreDoneWith(t *testing.T) {
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
	// A retrying delivery is not final: wait until River has recorded the failure.
	var retryingID int64
	require.Eventually(t, func() bool {
		d, err := b.store.DeliveryList(b.ctx, &outbox.DeliveryListParams{EventID: retrying.ID})
		require.NoError(t, err)
		if len(d) == 1 && d[0].State == outbox.DeliveryRetrying {
			retryingID = d[0].ID
			return true
		}
		return false
	}, 10*time.Second, 10*time.Millisecond)
	// An event of a day without partition (a producer backdated it) is in the
	// default partition, which is pruned row by row.
	var backdatedID string
	require.NoError(t, b.pool.QueryRow(b.ctx, fmt.Sprintf(
		`INSERT INTO %[1]s.events (type, created_at) VALUES ('agent.run.completed', '2001-01-01 00:00:00+00')
		RETURNING %[1]s.event_id(id, created_at)`, b.store.Schema())).Scan(&backdatedID))
	b.waitFinal(t, 1)

	today, err := b.store.EventPartitions(b.ctx)
	require.NoError(t, err)
	run := func(now time.Time) {
		t.Helper()
		worker := &pruneWorker{store: b.store, retention: EventRetentionDefault, logger: slog.New(slog.DiscardHandler),
			now: func() time.Time { return now }, retryWait: time.Millisecond}
		require.NoError(t, worker.Work(b.ctx, &river.Job[PruneArgs]{}))
	}
	exists := func(id string) bool {
		_, err := b.store.EventGet(b.ctx, id)
		if err == nil {
			return true
		}
		require.ErrorIs(t, err, outbox.ErrNotFound)
		return false
	}

	// Today: nothing is past the retention but the backdated event.
	run(time.Now())
	require.True(t, exists(delivered.ID))
	require.True(t, exists(retrying.ID))
	require.False(t, exists(backdatedID), "old and delivered: pruned from the default partition")

	// Nine days on, today is past the retention, but a delivery of its events is
	// still retrying: the day stays, whole. Partitions are made ahead of that day.
	later := time.Now().Add(9 * 24 * time.Hour)
	run(later)
	require.True(t, exists(delivered.ID))
	require.True(t, exists(retrying.ID))
	parts, err := b.store.EventPartitions(b.ctx)
	require.NoError(t, err)
	require.Equal(t, today[0].Name, parts[0].Name)
	require.Equal(t, "events_p"+later.UTC().AddDate(0, 0, 3).Format("20060102"), parts[len(parts)-1].Name)

	// Once the delivery is final, the day goes.
	_, err = b.daemon.Client().JobCancel(b.ctx, retryingID)
	require.NoError(t, err)
	run(later)
	require.False(t, exists(delivered.ID))
	require.False(t, exists(retrying.ID))
	parts, err = b.store.EventPartitions(b.ctx)
	require.NoError(t, err)
	require.NotEqual(t, today[0].Name, parts[0].Name)
}

// TestRetentionMakesPartitionsAheadOfItsNextRuns: with narrow partitions and a
// retention interval longer than ten of them, partitions still reach past the
// next runs, so that no event lands in the DEFAULT partition between runs.
func TestRetentionMakesPartitionsAheadOfItsNextRuns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := outboxtest.Store(t)
	_, err := outboxtest.Pool(t).Exec(ctx, fmt.Sprintf("UPDATE %s.settings SET event_partition_interval = '1 minute'", store.Schema()))
	require.NoError(t, err)

	now := time.Now()
	reach := func(interval time.Duration) time.Time {
		t.Helper()
		worker := &pruneWorker{store: store, retention: EventRetentionDefault, interval: interval, logger: slog.New(slog.DiscardHandler),
			now: func() time.Time { return now }, retryWait: time.Millisecond}
		require.NoError(t, worker.Work(ctx, &river.Job[PruneArgs]{}))
		parts, err := store.EventPartitions(ctx)
		require.NoError(t, err)
		return parts[len(parts)-1].To
	}
	// The migration's day partitions reach three days ahead: start after them.
	parts, err := store.EventPartitions(ctx)
	require.NoError(t, err)
	now = parts[len(parts)-1].To.Add(time.Second)

	// A short interval: ten partitions ahead.
	require.WithinDuration(t, now.Truncate(time.Minute).Add(11*time.Minute), reach(time.Minute), 0)
	// Runs every 15 minutes: three runs ahead, although that is 45 partitions.
	require.WithinDuration(t, now.Truncate(time.Minute).Add(46*time.Minute), reach(15*time.Minute), 0)
}
