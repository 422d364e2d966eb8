package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/outboxd/outboxd/outbox"
)

// EventRetentionDefault is how long events are kept once all their deliveries
// are final.
const EventRetentionDefault = 7 * 24 * time.Hour

// pruneInterval is how often the leader daemon prunes events, while the oldest
// event is older than the retention (periodicGate).
const pruneInterval = 10 * time.Minute

// pruneBatch is how many events one delete removes.
const pruneBatch = 1000

// PruneArgs is the periodic retention job: delete events older than the
// retention whose deliveries are all final.
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
	logger    *slog.Logger
	now       func() time.Time
}

func (w *pruneWorker) Work(ctx context.Context, _ *river.Job[PruneArgs]) error {
	before := w.now().Add(-w.retention)
	var total int64
	for {
		n, err := w.store.EventsPrune(ctx, before, pruneBatch)
		if err != nil {
			return err
		}
		total += n
		if n < pruneBatch {
			break
		}
	}
	if total > 0 {
		w.logger.InfoContext(ctx, "pruned events", slog.Int64("events", total), slog.Time("created_before", before))
	}
	return nil
}
