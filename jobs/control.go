package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/outboxd/outboxd/outbox"
)

// This file holds the delivery worker's control decisions: deferring a run
// without spending an attempt, the ends of ordered deliveries, and the circuit
// breaker's bookkeeping.

// deferRun puts the delivery back for d without counting an attempt (River
// snoozes it) and counts why.
func (w *deliveryWorker) deferRun(reason string, d time.Duration) error {
	w.metrics.DeliveriesDeferred.WithLabelValues(reason).Inc()
	return river.JobSnooze(max(d, 10*time.Millisecond))
}

// backoff grows with how often the job was already deferred: base doubled per
// deferral up to ceiling, ±20 % so deferred jobs do not return in step.
func (w *deliveryWorker) backoff(job *river.Job[DeliveryArgs], base, ceiling time.Duration) time.Duration {
	var meta struct {
		Snoozes int `json:"snoozes"`
	}
	_ = json.Unmarshal(job.Metadata, &meta) // none yet is zero
	d := ceiling
	if meta.Snoozes < 20 {
		d = min(base<<meta.Snoozes, ceiling)
	}
	return time.Duration(float64(d) * (0.8 + 0.4*w.random()))
}

// inflightWait is how long a delivery refused a slot waits before it asks again:
// growing with each refusal, and at least as long as the subscription's oldest
// attempt in flight here has run (up to the request timeout), so the deliveries
// of an endpoint that hangs do not come round every few milliseconds.
func (w *deliveryWorker) inflightWait(job *river.Job[DeliveryArgs], target *outbox.DeliveryTarget) time.Duration {
	slow := min(w.inflight.oldest(target.SubscriptionID), w.config.RequestTimeout)
	return max(w.backoff(job, 100*time.Millisecond, 5*time.Second), time.Duration(float64(slow)*(0.8+0.4*w.random())))
}

// ordered reports whether a delivery belongs to an ordered line. Such a delivery
// is only ever fetched as its line's head (outbox/ordered.go): the rest of the
// line waits in River's pending state.
func ordered(job *river.Job[DeliveryArgs]) bool { return job.Args.Seq > 0 }

// orderedDisabledRecheck is how often the head of an ordered line looks again
// while its subscription is disabled (enabling it makes the head due at once).
const orderedDisabledRecheck = 30 * time.Second

// completeOrdered completes an ordered delivery's job and makes the next of its
// line due, in one transaction under the line's lock: the next delivery cannot
// start before this one is recorded as done.
func (w *deliveryWorker) completeOrdered(ctx context.Context, job *river.Job[DeliveryArgs]) error {
	ctx = context.WithoutCancel(ctx) // delivered: record it even if the daemon is stopping
	tx, err := w.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if err := w.store.OrderedLockTx(ctx, tx, []string{job.Args.AgentID}); err != nil {
		return err
	}
	completed, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
	if err != nil {
		return err
	}
	if completed.State != rivertype.JobStateCompleted {
		// Someone else changed the job while it ran (cancelled it in the River UI,
		// or it was rescued): leave the line as it is.
		return fmt.Errorf("delivery %d is %s, not running", job.ID, completed.State)
	}
	if _, err := w.store.OrderedPromoteTx(ctx, tx, []string{job.Args.AgentID}, 0); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// orderedFinish makes the next delivery of an ordered line due when this one
// has run for the last time (dead in a line that skips dead deliveries, or
// cancelled because its event is gone), before River records its end.
func (w *deliveryWorker) orderedFinish(ctx context.Context, job *river.Job[DeliveryArgs]) {
	if !ordered(job) {
		return
	}
	ctx = context.WithoutCancel(ctx)
	err := pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		return w.store.OrderedFinishTx(ctx, tx, job.Args.AgentID, job.ID)
	})
	if err != nil {
		// The sweep promotes the line within two minutes.
		w.logger.WarnContext(ctx, "make the next ordered delivery due", slog.Int64("delivery_id", job.ID), slog.String("error", err.Error()))
	}
}

// succeeded ends the subscription's run of failures.
func (w *deliveryWorker) succeeded(ctx context.Context, target *outbox.DeliveryTarget) {
	recovered, err := w.store.SubscriptionSuccess(context.WithoutCancel(ctx), target.SubscriptionID)
	if err != nil {
		w.logger.WarnContext(ctx, "record success", slog.String("subscription_id", target.SubscriptionID), slog.String("error", err.Error()))
		return
	}
	if recovered {
		w.metrics.OperationalEvents.WithLabelValues(outbox.EventSubscriptionRecovered).Inc()
		w.logger.InfoContext(ctx, "subscription recovered: its circuit is closed again",
			slog.String("subscription_id", target.SubscriptionID), slog.Int("failures", target.FailureStreak))
	}
}

// failed counts a failed attempt against the subscription's circuit (probe: the
// attempt was the open circuit's probe) and reports whether the subscription has
// now been disabled for failing too long.
func (w *deliveryWorker) failed(ctx context.Context, target *outbox.DeliveryTarget, probe bool, cause error) bool {
	outcome, err := w.store.SubscriptionFailure(context.WithoutCancel(ctx), target.SubscriptionID, &w.config.Circuit,
		&outbox.AttemptFailure{Probe: probe, Error: attemptWhy(cause)}) // the reason goes with the subscription and its URL
	if err != nil {
		w.logger.WarnContext(ctx, "record failure", slog.String("subscription_id", target.SubscriptionID), slog.String("error", err.Error()))
		return false
	}
	if outcome.Opened {
		w.metrics.CircuitsOpened.Inc()
		w.logger.WarnContext(ctx, "circuit opened: deliveries held back",
			slog.String("subscription_id", target.SubscriptionID), slog.Int("failures", outcome.Streak),
			slog.Time("until", *outcome.OpenUntil), slog.String("last_error", attemptWhy(cause)))
	}
	if outcome.Disabled {
		w.metrics.SubscriptionsDisabled.WithLabelValues("failing").Inc()
		w.metrics.OperationalEvents.WithLabelValues(outbox.EventSubscriptionDisabled).Inc()
		w.logger.WarnContext(ctx, "subscription disabled", slog.String("subscription_id", target.SubscriptionID),
			slog.String("reason", outcome.Reason))
	}
	return outcome.Disabled
}

// exhausted tells operators a delivery is dead and, on an ordered line that
// skips dead deliveries, lets the next one go.
func (w *deliveryWorker) exhausted(ctx context.Context, job *river.Job[DeliveryArgs], target *outbox.DeliveryTarget, cause error) {
	ctx = context.WithoutCancel(ctx)
	err := w.store.DeliveryExhaustedPublish(ctx, &outbox.DeliveryExhausted{
		DeliveryID:     job.ID,
		SubscriptionID: target.SubscriptionID,
		OrganizationID: target.OrganizationID,
		URL:            target.URL,
		EventID:        target.Event.ID,
		EventType:      target.Event.Type,
		Attempts:       job.Attempt,
		LastError:      cause.Error(),
	})
	if err != nil {
		w.logger.WarnContext(ctx, "publish "+outbox.EventDeliveryExhausted, slog.Int64("delivery_id", job.ID), slog.String("error", err.Error()))
	} else if !outbox.IsOperational(target.Event.Type) {
		w.metrics.OperationalEvents.WithLabelValues(outbox.EventDeliveryExhausted).Inc()
	}
	if target.OnDead == outbox.OnDeadSkip {
		w.orderedFinish(ctx, job)
	}
}
