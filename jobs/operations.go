package jobs

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/signing"
)

// ErrDeliveryInFlight is returned when retrying a delivery whose attempt is running.
// It wraps outbox.ErrConflict.
var ErrDeliveryInFlight = fmt.Errorf("%w: the delivery is being attempted right now; retry it when the attempt ends", outbox.ErrConflict)

// Operations carries out what the REST API and the CLI ask of River: retrying a
// delivery now, sending a test webhook, and recovering what a subscription missed. It works
// with an unstarted daemon too (the CLI's case): inserts and retries need no
// running workers.
type Operations struct {
	daemon *Daemon
}

// Operations returns the daemon's operations.
func (d *Daemon) Operations() *Operations { return &Operations{daemon: d} }

// DeliveryRetry makes a delivery due now, whatever its state (a delivered one is
// sent again), and returns it. A dead delivery gets one more attempt.
func (o *Operations) DeliveryRetry(ctx context.Context, id int64) (*outbox.Delivery, error) {
	store := o.daemon.config.Store
	delivery, err := store.DeliveryGet(ctx, id)
	if err != nil {
		return nil, err
	}
	if delivery.State == outbox.DeliveryDelivering {
		return nil, ErrDeliveryInFlight
	}
	err = pgx.BeginFunc(ctx, o.daemon.pool, func(tx pgx.Tx) error {
		// An ordered delivery that ended goes back to its line (it is due now if the
		// line has nothing else in progress); any other is due now.
		if requeued, err := store.OrderedRetryTx(ctx, tx, id); err != nil || requeued {
			return err
		}
		if _, err := o.daemon.client.JobRetryTx(ctx, tx, id); err != nil {
			return err
		}
		// River's JobRetry sends no notification: without this the delivery
		// waits for the next fetch poll.
		return store.DeliveriesAnnounceTx(ctx, tx, QueueDelivery)
	})
	if errors.Is(err, river.ErrNotFound) {
		return nil, outbox.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("retry delivery: %w", err)
	}
	return store.DeliveryGet(ctx, id)
}

// TestEventType is the type of the webhook sent by SubscriptionTest.
const TestEventType = "webhook.test"

// SubscriptionTest sends a webhook.test event to a subscription now, signed and
// through the same SSRF guard as deliveries, and returns the attempt. Nothing is
// stored; a failed attempt is not retried.
func (o *Operations) SubscriptionTest(ctx context.Context, subscriptionID string) (*outbox.Attempt, error) {
	w := o.daemon.delivery
	target, err := w.store.DeliveryTarget(ctx, "", subscriptionID)
	if err != nil {
		return nil, err
	}
	if len(target.Secrets) == 0 {
		return nil, fmt.Errorf("subscription %s has no active signing secret", subscriptionID)
	}
	suffix := make([]byte, 10)
	_, _ = rand.Read(suffix)
	payload, _ := json.Marshal(map[string]string{
		"subscription_id": subscriptionID,
		"message":         "A test webhook from outboxd. Answer 2xx to acknowledge it.",
	})
	event := &outbox.Event{
		ID:        "evt_test_" + hex.EncodeToString(suffix),
		Type:      TestEventType,
		Payload:   payload,
		CreatedAt: w.now(),
	}
	body, err := outbox.WebhookBody(event)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, w.config.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.URL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("subscription %s url: %w", subscriptionID, err)
	}
	for name, value := range target.Headers {
		req.Header.Set(name, value)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", w.config.UserAgent)
	start := w.now()
	signing.SetHeaders(req.Header, event.ID, start, body, target.Secrets...)

	attempt := &outbox.Attempt{Attempt: 1, At: start}
	resp, err := w.client.Do(req)
	attempt.DurationMS = msSince(w.now, start)
	if err != nil {
		attempt.ErrorClass = classifyError(ctx, err)
		attempt.Error = describeRequestError(err, w.config.RequestTimeout)
		return attempt, nil
	}
	defer resp.Body.Close()
	attempt.StatusCode = resp.StatusCode
	attempt.Response, _ = readExcerpt(resp.Body, w.config.ResponseReadLimit)
	attempt.DurationMS = msSince(w.now, start)
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		attempt.ErrorClass = outbox.ErrorClassHTTPStatus
	}
	return attempt, nil
}

// RecoveryArgs are a recovery job's arguments.
type RecoveryArgs struct {
	SubscriptionID string    `json:"subscription_id"`
	Since          time.Time `json:"since"`
	Until          time.Time `json:"until"`
}

// Kind is the River job kind.
func (RecoveryArgs) Kind() string { return outbox.RecoveryKind }

// InsertOpts puts recoveries on the fan-out queue, beside the work they resemble.
func (RecoveryArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueFanout, MaxAttempts: 5}
}

// RecoveryStart starts recovering what a subscription missed in [since, until)
// (see outbox.Recovery) and returns the recovery; it runs in the background on
// any daemon.
func (o *Operations) RecoveryStart(ctx context.Context, subscriptionID string, since, until time.Time) (*outbox.Recovery, error) {
	if !since.Before(until) {
		return nil, &outbox.ValidationError{Field: "until", Message: "must be after since"}
	}
	if _, err := o.daemon.config.Store.SubscriptionGet(ctx, subscriptionID); err != nil {
		return nil, err
	}
	result, err := o.daemon.client.Insert(ctx, RecoveryArgs{SubscriptionID: subscriptionID, Since: since.UTC(), Until: until.UTC()}, nil)
	if err != nil {
		return nil, fmt.Errorf("start recovery: %w", err)
	}
	return recoveryFromJob(result.Job)
}

// RecoveryGet returns a recovery with its progress, or outbox.ErrNotFound.
func (o *Operations) RecoveryGet(ctx context.Context, id int64) (*outbox.Recovery, error) {
	job, err := o.daemon.client.JobGet(ctx, id)
	if errors.Is(err, river.ErrNotFound) || (err == nil && job.Kind != outbox.RecoveryKind) {
		return nil, outbox.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get recovery: %w", err)
	}
	return recoveryFromJob(job)
}

func recoveryFromJob(job *rivertype.JobRow) (*outbox.Recovery, error) {
	var args RecoveryArgs
	if err := json.Unmarshal(job.EncodedArgs, &args); err != nil {
		return nil, fmt.Errorf("decode recovery %d: %w", job.ID, err)
	}
	var meta outbox.RecoveryProgress
	_ = json.Unmarshal(job.Metadata, &meta) // no progress yet is zero
	recovery := &outbox.Recovery{
		ID:             job.ID,
		SubscriptionID: args.SubscriptionID,
		Since:          args.Since,
		Until:          args.Until,
		Retried:        meta.Retried,
		Created:        meta.Created,
		CreatedAt:      job.CreatedAt,
		FinishedAt:     job.FinalizedAt,
	}
	switch job.State {
	case rivertype.JobStateCompleted:
		recovery.State = "completed"
	case rivertype.JobStateDiscarded, rivertype.JobStateCancelled:
		recovery.State = "failed"
	case rivertype.JobStateRunning:
		recovery.State = "running"
	default:
		recovery.State = "pending"
	}
	if n := len(job.Errors); n > 0 {
		recovery.Error = job.Errors[n-1].Error
	}
	return recovery, nil
}

// recoveryWorker retries, page by page, every delivery of a recovery that ended
// dead or cancelled, then creates deliveries for the events the subscription
// missed while disabled. It resumes after the last id it recorded, so a rescued
// or retried recovery does not start over.
type recoveryWorker struct {
	river.WorkerDefaults[RecoveryArgs]
	pool          *pgxpool.Pool
	store         *outbox.Store
	retrySchedule outbox.RetrySchedule
	logger        *slog.Logger
}

// recoveryPage is how many deliveries a recovery handles between progress records.
const recoveryPage = 500

func (w *recoveryWorker) Timeout(*river.Job[RecoveryArgs]) time.Duration { return -1 } // no cap: as long as it takes

func (w *recoveryWorker) Work(ctx context.Context, job *river.Job[RecoveryArgs]) error {
	client := river.ClientFromContext[pgx.Tx](ctx)
	var progress outbox.RecoveryProgress
	_ = json.Unmarshal(job.Metadata, &progress) // a fresh recovery has none
	args := job.Args
	for {
		failed, err := w.store.DeliveryFailedIDs(ctx, args.SubscriptionID, args.Since, args.Until, progress.LastID, recoveryPage)
		if err != nil {
			return err
		}
		if len(failed) == 0 {
			break
		}
		if err := w.retryPage(ctx, client, failed); err != nil {
			return err
		}
		progress.Retried += int64(len(failed))
		progress.LastID = failed[len(failed)-1].ID
		if err := w.store.RecoveryProgressSet(ctx, job.ID, &progress); err != nil {
			return err
		}
	}
	for {
		missed, err := w.store.RecoveryMissedEvents(ctx, args.SubscriptionID, args.Since, args.Until, progress.LastSeq, recoveryPage)
		if err != nil {
			return err
		}
		if len(missed) == 0 {
			break
		}
		params := make([]river.InsertManyParams, len(missed))
		var agents []string
		for i, m := range missed {
			schedule := m.RetrySchedule
			if schedule == nil {
				schedule = w.retrySchedule
			}
			params[i] = river.InsertManyParams{
				Args:       deliveryArgs(m.EventID, args.SubscriptionID, m.AgentID, m.EventSeq, m.Ordered),
				InsertOpts: &river.InsertOpts{MaxAttempts: maxAttempts(schedule), Pending: m.Ordered},
			}
			if m.Ordered && !slices.Contains(agents, m.AgentID) {
				agents = append(agents, m.AgentID)
			}
		}
		err = pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
			// Ordered ones join their lines, which then go on in outbox order.
			if err := w.store.OrderedLockTx(ctx, tx, agents); err != nil {
				return err
			}
			if _, err := client.InsertManyTx(ctx, tx, params); err != nil {
				return fmt.Errorf("insert missed deliveries: %w", err)
			}
			_, err := w.store.OrderedPromoteTx(ctx, tx, agents, 0)
			return err
		})
		if err != nil {
			return err
		}
		progress.Created += int64(len(missed))
		progress.LastSeq = missed[len(missed)-1].EventSeq
		if err := w.store.RecoveryProgressSet(ctx, job.ID, &progress); err != nil {
			return err
		}
	}
	w.logger.InfoContext(ctx, "recovery finished", slog.Int64("recovery_id", job.ID),
		slog.String("subscription_id", args.SubscriptionID), slog.Int64("retried", progress.Retried),
		slog.Int64("created", progress.Created))
	return nil
}

// retryPage makes one page of failed deliveries due again, in one transaction:
// ordered ones go back to their lines, which then go on in outbox order.
func (w *recoveryWorker) retryPage(ctx context.Context, client *river.Client[pgx.Tx], failed []outbox.FailedDelivery) error {
	var orderedIDs []int64
	for _, f := range failed {
		if f.Ordered {
			orderedIDs = append(orderedIDs, f.ID)
		}
	}
	return pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		if len(orderedIDs) > 0 {
			agents, err := w.store.OrderedLockJobsTx(ctx, tx, orderedIDs)
			if err != nil {
				return err
			}
			if err := w.store.OrderedRequeueTx(ctx, tx, orderedIDs, agents); err != nil {
				return err
			}
		}
		retried := 0
		for _, f := range failed {
			if f.Ordered {
				continue
			}
			if _, err := client.JobRetryTx(ctx, tx, f.ID); err != nil && !errors.Is(err, river.ErrNotFound) {
				return fmt.Errorf("retry delivery %d: %w", f.ID, err)
			}
			retried++
		}
		if retried == 0 {
			return nil
		}
		return w.store.DeliveriesAnnounceTx(ctx, tx, QueueDelivery)
	})
}
