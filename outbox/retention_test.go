package outbox_test

import (
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/outboxtest"
)

// partitionOf names the partition that holds an event.
func partitionOf(ctx context.Context, t *testing.T, store *outbox.Store, event *outbox.Event) string {
	t.Helper()
	var name string
	err := outboxtest.Pool(t).QueryRow(ctx, fmt.Sprintf("SELECT tableoid::regclass::text FROM %s.events WHERE id = $1", store.Schema()), event.Seq).Scan(&name)
	require.NoError(t, err)
	return name
}

func TestEventPartitions(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		ctx   context.Context
		store *outbox.Store
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		return &testBundle{ctx: context.Background(), store: outboxtest.Store(t)}
	}
	day := func(t time.Time) time.Time { return t.UTC().Truncate(24 * time.Hour) }

	t.Run("MigrationMakesTodayAndThreeDaysAhead", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		parts, err := b.store.EventPartitions(b.ctx)
		require.NoError(t, err)
		require.Len(t, parts, 4)
		today := day(time.Now())
		for i, part := range parts {
			from := today.AddDate(0, 0, i)
			require.Equal(t, "events_p"+from.Format("20060102"), part.Name)
			require.True(t, part.From.Equal(from), "%s from %s", part.Name, part.From)
			require.True(t, part.To.Equal(from.AddDate(0, 0, 1)), "%s to %s", part.Name, part.To)
		}

		event := outboxtest.Event(b.ctx, t, b.store, nil)
		require.Equal(t, b.store.Schema()+"."+parts[0].Name, partitionOf(b.ctx, t, b.store, event))
	})

	t.Run("EnsureMakesOnlyMissingDays", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		today := day(time.Now())
		made, err := b.store.EventPartitionsEnsure(b.ctx, today.AddDate(0, 0, 2), today.AddDate(0, 0, 5).Add(time.Hour))
		require.NoError(t, err)
		require.Equal(t, []string{
			"events_p" + today.AddDate(0, 0, 4).Format("20060102"),
			"events_p" + today.AddDate(0, 0, 5).Format("20060102"),
		}, made)
		made, err = b.store.EventPartitionsEnsure(b.ctx, today, today.AddDate(0, 0, 5))
		require.NoError(t, err)
		require.Empty(t, made, "all there")
	})

	t.Run("NarrowerPartitionsAndAChangeOfWidth", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		_, err := outboxtest.Pool(t).Exec(b.ctx, fmt.Sprintf("UPDATE %s.settings SET event_partition_interval = '15 minutes'", b.store.Schema()))
		require.NoError(t, err)
		// Quarter hours from the end of the last day partition made by the migration.
		parts, err := b.store.EventPartitions(b.ctx)
		require.NoError(t, err)
		end := parts[len(parts)-1].To
		made, err := b.store.EventPartitionsEnsure(b.ctx, end, end.Add(time.Hour))
		require.NoError(t, err)
		require.Equal(t, []string{
			"events_p" + end.UTC().Format("20060102") + "t000000",
			"events_p" + end.UTC().Format("20060102") + "t001500",
			"events_p" + end.UTC().Format("20060102") + "t003000",
			"events_p" + end.UTC().Format("20060102") + "t004500",
			"events_p" + end.UTC().Format("20060102") + "t010000",
		}, made)
		parts, err = b.store.EventPartitions(b.ctx)
		require.NoError(t, err)
		for i := 1; i < len(parts); i++ {
			require.True(t, parts[i].From.Equal(parts[i-1].To), "no gap, no overlap: %v", parts)
		}

		// Back to days: the next day partition starts where the quarter hours end.
		_, err = outboxtest.Pool(t).Exec(b.ctx, fmt.Sprintf("UPDATE %s.settings SET event_partition_interval = '1 day'", b.store.Schema()))
		require.NoError(t, err)
		last := parts[len(parts)-1]
		made, err = b.store.EventPartitionsEnsure(b.ctx, last.To, last.To)
		require.NoError(t, err)
		require.Len(t, made, 1)
		parts, err = b.store.EventPartitions(b.ctx)
		require.NoError(t, err)
		require.True(t, parts[len(parts)-1].From.Equal(last.To))
		require.True(t, parts[len(parts)-1].To.Equal(day(last.To).AddDate(0, 0, 1)), "and ends with the day")

		// A width that does not divide a day is refused.
		_, err = outboxtest.Pool(t).Exec(b.ctx, fmt.Sprintf("UPDATE %s.settings SET event_partition_interval = '7 minutes'", b.store.Schema()))
		require.Equal(t, "settings_event_partition_interval", requirePgError(t, err).ConstraintName)
	})

	t.Run("RowsOfADayWithoutPartitionMoveIntoIt", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		// A producer may backdate an event; its day has no partition, so it
		// lands in the default partition, and keeps its id when its day's
		// partition is made.
		var eventID string
		err := outboxtest.Pool(t).QueryRow(b.ctx, fmt.Sprintf(
			`INSERT INTO %[1]s.events (type, created_at) VALUES ('agent.step.completed', '2001-02-03 04:05:06.789+00')
			RETURNING %[1]s.event_id(id, created_at)`, b.store.Schema())).Scan(&eventID)
		require.NoError(t, err)
		event, err := b.store.EventGet(b.ctx, eventID)
		require.NoError(t, err)
		require.Equal(t, b.store.Schema()+".events_default", partitionOf(b.ctx, t, b.store, event))

		made, err := b.store.EventPartitionsEnsure(b.ctx, event.CreatedAt, event.CreatedAt)
		require.NoError(t, err)
		require.Equal(t, []string{"events_p20010203"}, made)
		require.Equal(t, b.store.Schema()+".events_p20010203", partitionOf(b.ctx, t, b.store, event))
		moved, err := b.store.EventGet(b.ctx, eventID)
		require.NoError(t, err)
		require.Equal(t, event, moved)
	})

	t.Run("DropTakesTheDayAndItsIdempotencyKeys", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		keyed, err := b.store.Publish(b.ctx, &outbox.PublishParams{Type: "agent.step.completed", IdempotencyKey: "step-1"})
		require.NoError(t, err)
		again, err := b.store.Publish(b.ctx, &outbox.PublishParams{Type: "agent.step.completed", IdempotencyKey: "step-1"})
		require.NoError(t, err)
		require.Equal(t, keyed.ID, again.ID, "a repeated key is the same event")

		parts, err := b.store.EventPartitions(b.ctx)
		require.NoError(t, err)
		require.NoError(t, b.store.EventPartitionDrop(b.ctx, parts[0].Name, time.Second))
		_, err = b.store.EventGet(b.ctx, keyed.ID)
		require.ErrorIs(t, err, outbox.ErrNotFound)
		require.Zero(t, countRows(b.ctx, t, b.store, "event_idempotency"))

		// The day is gone, its key free again; the new event lands in the default partition.
		fresh, err := b.store.Publish(b.ctx, &outbox.PublishParams{Type: "agent.step.completed", IdempotencyKey: "step-1"})
		require.NoError(t, err)
		require.NotEqual(t, keyed.ID, fresh.ID)
		require.Equal(t, b.store.Schema()+".events_default", partitionOf(b.ctx, t, b.store, fresh))

		err = b.store.EventPartitionDrop(b.ctx, "events_default", time.Second)
		require.ErrorContains(t, err, "the DEFAULT partition is never dropped")
	})

	t.Run("DropDetachesThenDropsAndCleansUpAHalfDoneDrop", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		outboxtest.Event(b.ctx, t, b.store, nil)
		parts, err := b.store.EventPartitions(b.ctx)
		require.NoError(t, err)
		tableExists := func(name string) bool {
			var exists bool
			require.NoError(t, outboxtest.Pool(t).QueryRow(b.ctx, "SELECT to_regclass($1) IS NOT NULL", b.store.Schema()+"."+name).Scan(&exists))
			return exists
		}

		// A retention run that stopped after the first step leaves a detached table…
		_, err = outboxtest.Pool(t).Exec(b.ctx, fmt.Sprintf("SELECT %s.events_partition_detach($1)", b.store.Schema()), parts[0].Name)
		require.NoError(t, err)
		require.True(t, tableExists(parts[0].Name))
		require.Zero(t, countRows(b.ctx, t, b.store, "events"), "no longer part of events")
		// …which the next drops, and only it: every partition is left.
		dropped, err := b.store.EventsDetachedDrop(b.ctx)
		require.NoError(t, err)
		require.Equal(t, []string{parts[0].Name}, dropped)
		require.False(t, tableExists(parts[0].Name))
		left, err := b.store.EventPartitions(b.ctx)
		require.NoError(t, err)
		require.Equal(t, parts[1:], left)

		// A whole drop leaves nothing behind.
		require.NoError(t, b.store.EventPartitionDrop(b.ctx, parts[1].Name, time.Second))
		require.False(t, tableExists(parts[1].Name))
		dropped, err = b.store.EventsDetachedDrop(b.ctx)
		require.NoError(t, err)
		require.Empty(t, dropped)
	})

	t.Run("DropGivesUpWhenALongTransactionHoldsTheTable", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		outboxtest.Event(b.ctx, t, b.store, nil)
		parts, err := b.store.EventPartitions(b.ctx)
		require.NoError(t, err)

		// A reader in an open transaction holds outbox.events' share lock.
		reader := begin(b.ctx, t, outboxtest.Pool(t))
		_, err = reader.Exec(b.ctx, fmt.Sprintf("SELECT count(*) FROM %s.events", b.store.Schema()))
		require.NoError(t, err)

		start := time.Now()
		err = b.store.EventPartitionDrop(b.ctx, parts[0].Name, 50*time.Millisecond)
		require.ErrorIs(t, err, outbox.ErrLockTimeout)
		require.Less(t, time.Since(start), 5*time.Second, "it waited for the lock timeout, not for the reader")
		require.NoError(t, reader.Rollback(b.ctx))

		require.NoError(t, b.store.EventPartitionDrop(b.ctx, parts[0].Name, 50*time.Millisecond), "free now")
		require.Zero(t, countRows(b.ctx, t, b.store, "events"))
	})

	t.Run("BlockersAreUndispatchedEventsAndUnfinishedDeliveries", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		parts, err := b.store.EventPartitions(b.ctx)
		require.NoError(t, err)
		today := &parts[0]

		blockers, err := b.store.EventPartitionBlockers(b.ctx, today)
		require.NoError(t, err)
		require.False(t, blockers.Blocked(), "an empty day")

		outboxtest.Event(b.ctx, t, b.store, nil)
		blockers, err = b.store.EventPartitionBlockers(b.ctx, today)
		require.NoError(t, err)
		require.True(t, blockers.Undispatched)

		tx := begin(b.ctx, t, outboxtest.Pool(t))
		claim, err := b.store.EventClaimFanoutTx(b.ctx, tx, 10)
		require.NoError(t, err)
		require.Len(t, claim.Seqs, 1)
		require.NoError(t, tx.Commit(b.ctx))
		blockers, err = b.store.EventPartitionBlockers(b.ctx, today)
		require.NoError(t, err)
		require.False(t, blockers.Blocked(), "claimed, and no delivery to wait for")
		// (Unfinished deliveries keep a day too: jobs' TestRetention shows it with real ones.)
	})
}

func TestEventIDs(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	store := outboxtest.Store(t)
	pool := outboxtest.Pool(t)

	var tag string
	require.NoError(t, pool.QueryRow(ctx, fmt.Sprintf("SELECT event_id_tag FROM %s.settings", store.Schema())).Scan(&tag))
	require.Regexp(t, `^[0-9a-f]{8}$`, tag)

	first := outboxtest.Event(ctx, t, store, nil)
	second := outboxtest.Event(ctx, t, store, nil)
	// evt_, 12 hex digits of milliseconds, the installation's tag, 12 of position.
	pattern := regexp.MustCompile(`^evt_([0-9a-f]{12})` + tag + `([0-9a-f]{12})$`)
	for _, e := range []*outbox.Event{first, second} {
		m := pattern.FindStringSubmatch(e.ID)
		require.NotNil(t, m, e.ID)
		require.Equal(t, fmt.Sprintf("%012x", e.CreatedAt.UnixMilli()), m[1])
		require.Equal(t, fmt.Sprintf("%012x", e.Seq), m[2])
	}
	require.Less(t, first.ID, second.ID, "ids sort by time, then position")

	// An id of another installation, or no id at all, finds nothing.
	for _, id := range []string{
		"evt_" + first.ID[4:16] + "00000000" + first.ID[24:],
		"evt_nothex", "", "sub_" + first.ID[4:], first.ID + "0",
	} {
		_, err := store.EventGet(ctx, id)
		require.ErrorIs(t, err, outbox.ErrNotFound, id)
	}
}
