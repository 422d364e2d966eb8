package jobs

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/outboxd/outboxd/outbox"
)

// EventRetentionDefault is how long events are kept once all their deliveries
// are final.
const EventRetentionDefault = 7 * 24 * time.Hour

// RetentionIntervalDefault is how often the leader daemon runs retention.
const RetentionIntervalDefault = 10 * time.Minute

// retentionDueAhead: retention runs while no partition of outbox.events reaches
// this far ahead (or while an event is older than the retention).
const retentionDueAhead = 24 * time.Hour

const (
	// pruneBatch is how many events one delete of the DEFAULT partition removes.
	pruneBatch = 1000

	// partitionsAhead is how far ahead partitions of outbox.events are made, so
	// that producers find them made while no daemon runs for a while: three days,
	// or ten partitions when they are narrower than a few hours (the DEFAULT
	// partition takes what comes later).
	partitionsAhead    = 3 * 24 * time.Hour
	partitionsAheadMax = 10

	// partitionsAheadRuns: partitions also reach this many retention runs
	// ahead (within partitionsAhead), so that with narrow partitions and a long
	// --retention-interval the next run, or one that comes a little late, still
	// finds them made and no event lands in the DEFAULT partition.
	partitionsAheadRuns = 3

	// dropLockTimeout bounds how long dropping a partition waits for the
	// table's lock, and so how long producers can queue behind it.
	dropLockTimeout = 50 * time.Millisecond

	// dropAttempts is how often one retention run tries a drop whose lock was
	// busy before leaving it to the next run.
	dropAttempts = 5
)

// PruneArgs is the periodic retention job: make day partitions of outbox.events
// ahead, drop those older than the retention whose events are all done with, and
// prune the DEFAULT partition row by row.
type PruneArgs struct{}

// Kind is the River job kind.
func (PruneArgs) Kind() string { return "outboxd.prune_events" }

// InsertOpts puts pruning on the fan-out queue, at low priority.
func (PruneArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueFanout, Priority: 4, MaxAttempts: 3}
}

type pruneWorker struct {
	river.WorkerDefaults[PruneArgs]
	store     *outbox.Store
	retention time.Duration
	// interval is how often retention runs (Config.RetentionInterval).
	interval time.Duration
	logger   *slog.Logger
	now      func() time.Time
	// retryWait is the pause before trying a busy drop again.
	retryWait time.Duration
}

func (w *pruneWorker) Work(ctx context.Context, _ *river.Job[PruneArgs]) error {
	now := w.now()
	settings, err := w.store.Settings(ctx)
	if err != nil {
		return err
	}
	ahead := min(partitionsAhead, max(partitionsAheadMax*settings.EventPartitionInterval, partitionsAheadRuns*w.interval))
	made, err := w.store.EventPartitionsEnsure(ctx, now, now.Add(ahead))
	if err != nil {
		return err
	}
	if len(made) > 0 {
		w.logger.InfoContext(ctx, "made event partitions", slog.Any("partitions", made))
	}

	// A run that stopped between detaching a partition and dropping it left the
	// table; it goes now.
	leftover, err := w.store.EventsDetachedDrop(ctx)
	if err != nil {
		return err
	}
	if len(leftover) > 0 {
		w.logger.InfoContext(ctx, "dropped detached event partitions", slog.Any("partitions", leftover))
	}

	before := now.Add(-w.retention)
	parts, err := w.store.EventPartitions(ctx)
	if err != nil {
		return err
	}
	for _, part := range parts {
		if part.To.After(before) {
			break // oldest first: the rest are younger
		}
		if err := w.dropPartition(ctx, &part); err != nil {
			return err
		}
	}

	var total int64
	for {
		n, err := w.store.EventsPruneDefault(ctx, before, pruneBatch)
		if err != nil {
			return err
		}
		total += n
		if n < pruneBatch {
			break
		}
	}
	if total > 0 {
		w.logger.InfoContext(ctx, "pruned events of the default partition", slog.Int64("events", total), slog.Time("created_before", before))
	}
	return nil
}

// dropPartition drops a partition past the retention unless something in it is
// still needed, trying again a few times when the table's lock is busy.
func (w *pruneWorker) dropPartition(ctx context.Context, part *outbox.EventPartition) error {
	blockers, err := w.store.EventPartitionBlockers(ctx, part)
	if err != nil {
		return err
	}
	if blockers.Blocked() {
		w.logger.InfoContext(ctx, "event partition kept past retention: its events are not all done with",
			slog.String("partition", part.Name), slog.Bool("undispatched_events", blockers.Undispatched),
			slog.Int64("unfinished_deliveries", blockers.UnfinishedDeliveries),
			slog.Int64("unfinished_fanout_jobs", blockers.UnfinishedFanouts))
		return nil
	}
	for attempt := 1; ; attempt++ {
		start := time.Now()
		err := w.store.EventPartitionDrop(ctx, part.Name, dropLockTimeout)
		switch {
		case err == nil:
			w.logger.InfoContext(ctx, "dropped event partition", slog.String("partition", part.Name),
				slog.Time("from", part.From), slog.Time("to", part.To), slog.Duration("took", time.Since(start)))
			return nil
		case !errors.Is(err, outbox.ErrLockTimeout):
			return err
		case attempt >= dropAttempts:
			w.logger.WarnContext(ctx, "event partition not dropped: a long transaction holds outbox.events; trying again next run",
				slog.String("partition", part.Name), slog.Int("attempts", attempt))
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(w.retryWait):
		}
	}
}
