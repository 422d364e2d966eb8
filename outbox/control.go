package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/outbox/internal/dbsqlc"
)

// This file holds delivery control: caps on deliveries in flight, the circuit
// breaker and auto-disable, ordered lines, and the operational events that tell
// operators about them.

// MaxInFlightMax is the largest Subscription.MaxInFlight.
const MaxInFlightMax = 10_000

// Ordering says whether a subscription's deliveries keep an order.
type Ordering string

const (
	// OrderingNone delivers concurrently, in no particular order (the default).
	OrderingNone Ordering = "none"
	// OrderingAgent delivers each agent's events one at a time, in outbox order.
	// Events without an agent form one line of their own.
	OrderingAgent Ordering = "agent"
)

func (o Ordering) orDefault() Ordering {
	if o == "" {
		return OrderingNone
	}
	return o
}

func (o Ordering) validate() error {
	switch o {
	case "", OrderingNone, OrderingAgent:
		return nil
	}
	return invalid("ordering", "%q is not an ordering: none or agent", string(o))
}

// OnDead says what an ordered line does when one of its deliveries ends dead.
type OnDead string

const (
	// OnDeadBlock holds the line until the dead delivery is retried and delivered
	// (the default).
	OnDeadBlock OnDead = "block"
	// OnDeadSkip goes on with the next delivery.
	OnDeadSkip OnDead = "skip"
)

func (o OnDead) orDefault() OnDead {
	if o == "" {
		return OnDeadBlock
	}
	return o
}

func (o OnDead) validate() error {
	switch o {
	case "", OnDeadBlock, OnDeadSkip:
		return nil
	}
	return invalid("on_dead", "%q is not a choice: block or skip", string(o))
}

// Operational event types. outboxd publishes them itself (producers may not:
// the outboxd. prefix is reserved), and only subscriptions that name them, as
// "outboxd.*" or exactly, receive them: "*" does not match them.
const (
	// EventSubscriptionDisabled: a subscription failed for the whole
	// CircuitPolicy.DisableAfter period and was disabled.
	EventSubscriptionDisabled = "outboxd.subscription.disabled"
	// EventSubscriptionRecovered: a subscription whose circuit had opened
	// answered 2xx again.
	EventSubscriptionRecovered = "outboxd.subscription.recovered"
	// EventDeliveryExhausted: a delivery failed its last attempt and is dead.
	EventDeliveryExhausted = "outboxd.delivery.exhausted"
)

// IsOperational reports whether eventType is one of outboxd's own.
func IsOperational(eventType string) bool {
	return strings.HasPrefix(eventType, "outboxd.")
}

// publishOperationalTx publishes an outboxd.* event in tx, scoped to the
// subscription's organization so org-scoped operator subscriptions see it.
func (s *Store) publishOperationalTx(ctx context.Context, tx Executor, eventType, organizationID string, payload any) error {
	data, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	if err := s.queries.OperationalPublishAllow(ctx, s.on(tx)); err != nil {
		return translateError("publish "+eventType, err)
	}
	_, err = s.PublishTx(ctx, tx, &PublishParams{Type: eventType, Payload: data, OrganizationID: organizationID})
	return err
}

// subscriptionDisabled is the data of outboxd.subscription.disabled.
type subscriptionDisabled struct {
	SubscriptionID string     `json:"subscription_id"`
	URL            string     `json:"url"`
	Reason         string     `json:"reason"`
	FailingSince   *time.Time `json:"failing_since"` // nil when it was not failing (410 Gone)
	Failures       int        `json:"failures"`
}

// DeliveryLeaseTake takes one of a subscription's MaxInFlight slots for a
// delivery attempt, held until DeliveryLeaseRelease or for at most lease. It
// reports false when every slot is taken, and true when the subscription sets no
// cap.
func (s *Store) DeliveryLeaseTake(ctx context.Context, subscriptionID string, jobID int64, lease time.Duration) (bool, error) {
	taken, err := s.queries.DeliveryLeaseTake(ctx, s.on(s.db), &dbsqlc.DeliveryLeaseTakeParams{
		SubscriptionID: subscriptionID,
		JobID:          jobID,
		LeaseSeconds:   lease.Seconds(),
	})
	if err != nil {
		return false, translateError("take delivery lease", err)
	}
	return taken, nil
}

// DeliveryLeaseRelease gives a delivery's slot back.
func (s *Store) DeliveryLeaseRelease(ctx context.Context, jobID int64) error {
	return translateError("release delivery lease", s.queries.DeliveryLeaseRelease(ctx, s.on(s.db), jobID))
}

// CircuitPolicy is how the circuit breaker treats a failing subscription.
type CircuitPolicy struct {
	// Threshold is how many attempts must fail in a row before the circuit opens.
	Threshold int
	// BackoffMin is how long the circuit first stays open; it doubles with each
	// failed probe up to BackoffMax. Attempts that were already in flight when it
	// opened do not lengthen it.
	BackoffMin time.Duration
	BackoffMax time.Duration
	// DisableAfter disables a subscription whose attempts have all failed for this
	// long; 0 or less never disables.
	DisableAfter time.Duration
}

// AttemptFailure is one failed delivery attempt, as the circuit breaker sees it.
type AttemptFailure struct {
	// Probe is true when the attempt was the open circuit's probe
	// (CircuitProbeTake): only a failed probe lengthens an open circuit's wait.
	Probe bool
	// Error says what went wrong; a subscription disabled by this failure gives
	// it as part of its reason.
	Error string
}

// FailureOutcome is what one failed attempt did to its subscription.
type FailureOutcome struct {
	// Streak is the failures counted in a row: every failed attempt while the
	// circuit is closed, and then only failed probes.
	Streak       int
	FailingSince time.Time
	// OpenUntil is when the circuit next lets an attempt through; nil if closed.
	OpenUntil *time.Time
	// Opened is true when this failure opened the circuit.
	Opened bool
	// Disabled is true when this failure disabled the subscription; Reason says why.
	Disabled bool
	Reason   string
}

// SubscriptionFailure counts a failed attempt against its subscription: it may
// open the circuit, or lengthen its wait if the attempt was its probe, and after
// policy.DisableAfter of failures it disables the subscription and publishes
// outboxd.subscription.disabled, in one transaction. The failure of an attempt
// that was in flight when the circuit opened changes neither the streak nor the
// wait, but may still disable the subscription.
func (s *Store) SubscriptionFailure(ctx context.Context, subscriptionID string, policy *CircuitPolicy, failure *AttemptFailure) (*FailureOutcome, error) {
	var outcome *FailureOutcome
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		exec := s.on(tx)
		disableAfter := policy.DisableAfter
		if disableAfter <= 0 {
			disableAfter = 100 * 365 * 24 * time.Hour
		}
		row, err := s.queries.SubscriptionFailureRecord(ctx, exec, &dbsqlc.SubscriptionFailureRecordParams{
			SubscriptionID:      subscriptionID,
			Threshold:           int32(max(policy.Threshold, 1)), //nolint:gosec // small
			BackoffMinSeconds:   policy.BackoffMin.Seconds(),
			BackoffMaxSeconds:   max(policy.BackoffMax, policy.BackoffMin).Seconds(),
			DisableAfterSeconds: disableAfter.Seconds(),
			Probe:               failure.Probe,
		})
		if err != nil {
			return translateError("record failure", err)
		}
		outcome = &FailureOutcome{Streak: int(row.FailureStreak), OpenUntil: row.CircuitOpenUntil, Opened: row.Opened}
		if row.FailingSince != nil {
			outcome.FailingSince = *row.FailingSince
		}
		if !row.DisableDue || !row.Enabled {
			return nil
		}
		outcome.Reason = fmt.Sprintf("every attempt failed since %s; last: %s",
			outcome.FailingSince.UTC().Format(time.RFC3339), truncate(failure.Error, 300))
		n, err := s.queries.SubscriptionDisable(ctx, exec, &dbsqlc.SubscriptionDisableParams{ID: subscriptionID, Reason: &outcome.Reason})
		if err != nil || n == 0 {
			return translateError("disable subscription", err)
		}
		outcome.Disabled = true
		return s.publishOperationalTx(ctx, tx, EventSubscriptionDisabled, deref(row.OrganizationID), &subscriptionDisabled{
			SubscriptionID: subscriptionID, URL: row.Url, Reason: outcome.Reason,
			FailingSince: row.FailingSince, Failures: outcome.Streak,
		})
	})
	return outcome, err
}

// SubscriptionAutoDisable disables a subscription for a reason of the daemon's
// own (a receiver answering 410 Gone) and publishes outboxd.subscription.disabled,
// in one transaction. It reports whether this call disabled it.
func (s *Store) SubscriptionAutoDisable(ctx context.Context, subscriptionID, reason string) (bool, error) {
	disabled := false
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		exec := s.on(tx)
		n, err := s.queries.SubscriptionDisable(ctx, exec, &dbsqlc.SubscriptionDisableParams{ID: subscriptionID, Reason: &reason})
		if err != nil || n == 0 {
			return translateError("disable subscription", err)
		}
		row, err := s.queries.SubscriptionGet(ctx, exec, subscriptionID)
		if err != nil {
			return translateError("disable subscription", err)
		}
		disabled = true
		return s.publishOperationalTx(ctx, tx, EventSubscriptionDisabled, deref(row.OrganizationID), &subscriptionDisabled{
			SubscriptionID: subscriptionID, URL: row.Url, Reason: reason,
			FailingSince: row.FailingSince, Failures: int(row.FailureStreak),
		})
	})
	return disabled, err
}

// SubscriptionSuccess ends a subscription's run of failures after a 2xx. It
// reports whether the circuit had opened; if so it publishes
// outboxd.subscription.recovered in the same transaction.
func (s *Store) SubscriptionSuccess(ctx context.Context, subscriptionID string) (bool, error) {
	recovered := false
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		row, err := s.queries.SubscriptionSuccessRecord(ctx, s.on(tx), subscriptionID)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // no failures to forget, or gone
		}
		if err != nil {
			return translateError("record success", err)
		}
		if !row.WasOpen {
			return nil
		}
		recovered = true
		return s.publishOperationalTx(ctx, tx, EventSubscriptionRecovered, deref(row.OrganizationID), map[string]any{
			"subscription_id": subscriptionID,
			"url":             row.Url,
			"failures":        row.PreviousStreak,
		})
	})
	return recovered, err
}

// CircuitProbeTake makes this attempt the probe of a subscription whose circuit's
// wait has passed, keeping the circuit shut to the others for probe. It reports
// false when another attempt already took the probe.
func (s *Store) CircuitProbeTake(ctx context.Context, subscriptionID string, probe time.Duration) (bool, error) {
	_, err := s.queries.CircuitProbeTake(ctx, s.on(s.db), &dbsqlc.CircuitProbeTakeParams{
		SubscriptionID: subscriptionID,
		ProbeSeconds:   probe.Seconds(),
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, translateError("take circuit probe", err)
	}
	return true, nil
}

// DeliveryExhausted describes a delivery that failed its last attempt.
type DeliveryExhausted struct {
	DeliveryID     int64  `json:"delivery_id"`
	SubscriptionID string `json:"subscription_id"`
	OrganizationID string `json:"-"`
	URL            string `json:"url"`
	EventID        string `json:"event_id"`
	EventType      string `json:"event_type"`
	Attempts       int    `json:"attempts"`
	LastError      string `json:"last_error"`
}

// DeliveryExhaustedPublish publishes outboxd.delivery.exhausted. Deliveries of
// operational events publish nothing, so a failing operator endpoint cannot feed
// itself.
func (s *Store) DeliveryExhaustedPublish(ctx context.Context, exhausted *DeliveryExhausted) error {
	if IsOperational(exhausted.EventType) {
		return nil
	}
	e := *exhausted
	e.LastError = truncate(e.LastError, 500)
	return s.inTx(ctx, func(tx pgx.Tx) error {
		return s.publishOperationalTx(ctx, tx, EventDeliveryExhausted, e.OrganizationID, &e)
	})
}

// MissedEvent is an event a subscription matched but never got a delivery for.
type MissedEvent struct {
	EventSeq      int64
	EventID       string
	AgentID       string
	RetrySchedule RetrySchedule
	Ordered       bool
}

// RecoveryMissedEvents returns up to limit events created in [since, until) that
// the subscription matches but has no delivery for (it was disabled when they
// were fanned out), in outbox order after afterSeq.
func (s *Store) RecoveryMissedEvents(ctx context.Context, subscriptionID string, since, until time.Time, afterSeq int64, limit int) ([]MissedEvent, error) {
	rows, err := s.queries.RecoveryMissedEvents(ctx, s.on(s.db), &dbsqlc.RecoveryMissedEventsParams{
		SubscriptionID: subscriptionID,
		Since:          since,
		Until:          until,
		AfterSeq:       afterSeq,
		Max:            int32(listLimit(limit)), //nolint:gosec // bounded by listLimit
	})
	if err != nil {
		return nil, translateError("find missed events", err)
	}
	events := make([]MissedEvent, len(rows))
	for i, row := range rows {
		events[i] = MissedEvent{
			EventSeq:      row.EventSeq,
			EventID:       row.EventID,
			AgentID:       deref(row.AgentID),
			RetrySchedule: retryScheduleFromMillis(row.RetryScheduleMs),
			Ordered:       Ordering(row.Ordering) == OrderingAgent,
		}
	}
	return events, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 { // do not cut a UTF-8 sequence
		n--
	}
	return s[:n] + "…"
}
