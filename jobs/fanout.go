package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/outboxd/outboxd/outbox"
)

// FanoutTimeout bounds one fan-out job.
const FanoutTimeout = time.Minute

// fanout turns the events of a fan-out job into deliveries in tx: it matches them
// against subscriptions, inserts one delivery job per (event x matching
// subscription), and makes the next delivery of each ordered line it touched due.
// Events already fanned out are skipped, so a batch fanned out twice creates one
// set of deliveries. It returns how many deliveries it created.
func fanout(ctx context.Context, tx pgx.Tx, client *river.Client[pgx.Tx], store *outbox.Store, retrySchedule outbox.RetrySchedule, eventSeqs []int64) (int, error) {
	// Ordered lines of the batch's agents are locked first, so this fan-out and
	// the end of a line's head (or another fan-out) see each other's deliveries.
	agents, err := store.OrderedFanoutLockTx(ctx, tx, eventSeqs)
	if err != nil {
		return 0, err
	}
	deliveries, err := store.EventFanoutTx(ctx, tx, eventSeqs)
	if err != nil {
		return 0, err
	}
	if err := createDeliveries(ctx, tx, client, store, retrySchedule, deliveries, agents); err != nil {
		return 0, err
	}
	return len(deliveries), nil
}

// createDeliveries inserts a delivery job for each of deliveries in tx, ordered
// ones pending in their lines, and then makes due the next delivery of every
// line of agents, whose locks the caller holds.
func createDeliveries(ctx context.Context, tx pgx.Tx, client *river.Client[pgx.Tx], store *outbox.Store, retrySchedule outbox.RetrySchedule, deliveries []outbox.FanoutDelivery, agents []string) error {
	if len(deliveries) > 0 {
		params := make([]river.InsertManyParams, len(deliveries))
		due := false // some delivery is available now, not pending in its line
		for i, d := range deliveries {
			due = due || !d.Ordered
			schedule := d.RetrySchedule
			if schedule == nil {
				schedule = retrySchedule
			}
			params[i] = river.InsertManyParams{
				Args: deliveryArgs(d.EventID, d.SubscriptionID, d.AgentID, d.EventSeq, d.Ordered),
				// An ordered delivery waits in its line until OrderedPromoteTx makes it due.
				InsertOpts: &river.InsertOpts{MaxAttempts: maxAttempts(schedule), Pending: d.Ordered},
			}
		}
		if _, err := client.InsertManyFastTx(ctx, tx, params); err != nil {
			return fmt.Errorf("insert deliveries: %w", err)
		}
		if due {
			if err := store.DeliveriesAnnounceTx(ctx, tx, QueueDelivery); err != nil {
				return err
			}
		}
	}
	if _, err := store.OrderedPromoteTx(ctx, tx, agents, 0); err != nil {
		return err
	}
	return nil
}

// fanoutWorker fans out a batch the relay claimed and handed on. The relay now
// fans out every claim itself; the worker stays for the fan-out jobs an older
// outboxd left queued. It runs fanout and its own completion in one transaction,
// so either all of it commits or none.
type fanoutWorker struct {
	river.WorkerDefaults[FanoutArgs]

	pool          *pgxpool.Pool
	store         *outbox.Store
	retrySchedule outbox.RetrySchedule
	metrics       *Metrics
}

func (w *fanoutWorker) Timeout(*river.Job[FanoutArgs]) time.Duration { return FanoutTimeout }

func (w *fanoutWorker) Work(ctx context.Context, job *river.Job[FanoutArgs]) error {
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return err
	}
	tx, err := w.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit

	created, err := fanout(ctx, tx, client, w.store, w.retrySchedule, job.Args.EventSeqs)
	if err != nil {
		return err
	}
	if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job); err != nil {
		return fmt.Errorf("complete fan-out job: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit fan-out: %w", err)
	}
	w.metrics.EventsFannedOut.Add(float64(len(job.Args.EventSeqs)))
	w.metrics.DeliveriesCreated.Add(float64(created))
	return nil
}
