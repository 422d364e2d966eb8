package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/outboxd/outboxd/outbox"
)

// This file holds the delivery worker's control decisions: deferring a run
// without spending an attempt, ordered lines, and the circuit breaker's
// bookkeeping.

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

// orderedWait decides whether an ordered delivery may go: only when no earlier
// delivery of its line is unfinished (a dead one counts as finished when the
// subscription skips dead deliveries) and no earlier event of its agent still
// waits for fan-out. When it may not, it parks itself in the same transaction
// that checked, under the line's lock, and the delivery ahead wakes it when it
// ends; the returned wait is only a fallback.
func (w *deliveryWorker) orderedWait(ctx context.Context, job *river.Job[DeliveryArgs], target *outbox.DeliveryTarget) (time.Duration, bool, error) {
	tx, err := w.pool.Begin(ctx)
	if err != nil {
		return 0, false, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	block, err := w.store.OrderedCheckTx(ctx, tx, target.SubscriptionID, job.Args.AgentID, job.Args.Seq, target.OnDead)
	if err != nil || block == nil {
		return 0, false, err
	}
	if block.EventsPending {
		// The earlier event's delivery does not exist yet, and might never (if this
		// subscription does not match it): look again soon rather than park.
		return w.backoff(job, 50*time.Millisecond, 2*time.Second), true, nil
	}
	wait := orderedParkFallback
	if block.State == "running" {
		// If it ends dead in a line that skips dead deliveries, no wake comes.
		wait = orderedParkRunningFallback
	}
	if err := w.store.OrderedParkTx(ctx, tx, job.ID, wait); err != nil {
		return 0, false, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, false, fmt.Errorf("park ordered delivery: %w", err)
	}
	return wait, true, nil
}

// How long a parked ordered delivery waits at most for a wake from the delivery
// ahead before it looks again.
const (
	orderedParkFallback        = time.Minute
	orderedParkRunningFallback = 5 * time.Second

	// orderedSkipWakeDelay gives River time to record a dead delivery before the
	// next one of a line that skips dead deliveries looks.
	orderedSkipWakeDelay = 500 * time.Millisecond
)

// completeOrdered completes an ordered delivery's job and makes the next of its
// line due, in one transaction: the next delivery cannot start before this one
// is recorded as done.
func (w *deliveryWorker) completeOrdered(ctx context.Context, job *river.Job[DeliveryArgs], attempts json.RawMessage) error {
	ctx = context.WithoutCancel(ctx) // delivered: record it even if the daemon is stopping
	tx, err := w.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job); err != nil {
		return err
	}
	if err := w.store.OrderedAdvanceTx(ctx, tx, job.ID, attempts, job.Args.SubscriptionID, job.Args.AgentID, job.Args.Seq); err != nil {
		return err
	}
	return tx.Commit(ctx)
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

// failed counts a failed attempt against the subscription's circuit and reports
// whether the subscription has now been disabled for failing too long.
func (w *deliveryWorker) failed(ctx context.Context, target *outbox.DeliveryTarget, cause error) bool {
	outcome, err := w.store.SubscriptionFailure(context.WithoutCancel(ctx), target.SubscriptionID, &w.config.Circuit, cause.Error())
	if err != nil {
		w.logger.WarnContext(ctx, "record failure", slog.String("subscription_id", target.SubscriptionID), slog.String("error", err.Error()))
		return false
	}
	if outcome.Streak == w.config.Circuit.Threshold && outcome.OpenUntil != nil {
		w.metrics.CircuitsOpened.Inc()
		w.logger.WarnContext(ctx, "circuit opened: deliveries held back",
			slog.String("subscription_id", target.SubscriptionID), slog.Int("failures", outcome.Streak),
			slog.Time("until", *outcome.OpenUntil), slog.String("last_error", cause.Error()))
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
	if job.Args.Seq > 0 && target.OnDead == outbox.OnDeadSkip {
		// River records this delivery dead as soon as Work returns: the next one,
		// woken a moment later, finds it so and goes.
		err := w.store.OrderedWakeNextTx(ctx, w.pool, job.Args.SubscriptionID, job.Args.AgentID, job.Args.Seq, orderedSkipWakeDelay)
		if err != nil {
			w.logger.WarnContext(ctx, "wake next ordered delivery", slog.Int64("delivery_id", job.ID), slog.String("error", err.Error()))
		}
	}
}
