package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/outboxd/outboxd/outbox"
)

// orderedSweepInterval is how often the leader daemon looks for ordered lines
// that wait with nothing in progress, while any line has deliveries waiting
// (periodicGate): a line that stalls is resumed within two intervals.
const orderedSweepInterval = time.Minute

// OrderedSweepArgs is the periodic job that makes sure no ordered line stalls
// (outbox.Store.OrderedSweep).
type OrderedSweepArgs struct{}

// Kind is the River job kind.
func (OrderedSweepArgs) Kind() string { return "outboxd.ordered_sweep" }

// InsertOpts puts the sweep on the fan-out queue, at low priority.
func (OrderedSweepArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueFanout, Priority: 4, MaxAttempts: 3}
}

type orderedSweepWorker struct {
	river.WorkerDefaults[OrderedSweepArgs]
	store  *outbox.Store
	logger *slog.Logger
}

func (w *orderedSweepWorker) Work(ctx context.Context, _ *river.Job[OrderedSweepArgs]) error {
	n, err := w.store.OrderedSweep(ctx)
	if n > 0 {
		// The transactions that change a line promote it themselves: a line found
		// stalled was changed by hand, or lost a dead delivery to retention.
		w.logger.WarnContext(ctx, "ordered lines found waiting with nothing in progress; their next deliveries are due now",
			slog.Int64("deliveries", n))
	}
	return err
}
