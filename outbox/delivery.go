package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/outboxd/outboxd/outbox/internal/dbsqlc"
	"github.com/outboxd/outboxd/outbox/signing"
)

// DeliveryKind is the River job kind of deliveries; the job row is the delivery record.
const DeliveryKind = "outboxd.delivery"

// DeliveryState is where a delivery stands.
type DeliveryState string

const (
	DeliveryPending    DeliveryState = "pending"    // not attempted yet
	DeliveryDelivering DeliveryState = "delivering" // an attempt is in flight
	DeliveryRetrying   DeliveryState = "retrying"   // failed, another attempt is scheduled
	DeliveryDelivered  DeliveryState = "delivered"  // the receiver answered 2xx
	DeliveryDead       DeliveryState = "dead"       // every attempt failed
	DeliveryCancelled  DeliveryState = "cancelled"  // stopped: subscription disabled or deleted, event gone, or cancelled by an operator
)

// DeliveryStates lists every state, in lifecycle order.
var DeliveryStates = []DeliveryState{DeliveryPending, DeliveryDelivering, DeliveryRetrying, DeliveryDelivered, DeliveryDead, DeliveryCancelled}

// ParseDeliveryState checks a state name.
func ParseDeliveryState(s string) (DeliveryState, error) {
	for _, state := range DeliveryStates {
		if string(state) == s {
			return state, nil
		}
	}
	return "", fmt.Errorf("unknown delivery state %q; one of pending, delivering, retrying, delivered, dead, cancelled", s)
}

// Error classes of an Attempt that got no usable response.
const (
	ErrorClassHTTPStatus  = "http_status"     // the receiver answered, but not 2xx (3xx included: redirects are not followed)
	ErrorClassTimeout     = "timeout"         // connect, TLS or the whole request took too long
	ErrorClassConnection  = "connection"      // refused, reset or unreachable
	ErrorClassDNS         = "dns"             // the host name did not resolve
	ErrorClassTLS         = "tls"             // the TLS handshake or certificate failed
	ErrorClassBlocked     = "blocked_address" // the target is a private, loopback or metadata address
	ErrorClassInterrupted = "interrupted"     // the daemon stopped during the attempt; it does not count
	ErrorClassRequest     = "request"         // anything else that stopped the request
)

// Attempt records one delivery attempt. The delivery worker appends one to the
// job's metadata ("attempts") each time it tries.
type Attempt struct {
	Attempt    int       `json:"attempt"`
	At         time.Time `json:"at"`
	StatusCode int       `json:"status_code,omitempty"`
	ErrorClass string    `json:"error_class,omitempty"`
	Error      string    `json:"error,omitempty"`
	DurationMS float64   `json:"duration_ms"`
	// Response is the start of the response body (at most ResponseExcerptBytes).
	Response string `json:"response,omitempty"`
}

// ResponseExcerptBytes bounds Attempt.Response.
const ResponseExcerptBytes = 512

// Delivery is one event on its way to one subscription.
type Delivery struct {
	ID             int64         `json:"id"`
	EventID        string        `json:"event_id"`
	SubscriptionID string        `json:"subscription_id"`
	State          DeliveryState `json:"state"`
	// Attempt is how many attempts have been made.
	Attempt        int        `json:"attempt"`
	MaxAttempts    int        `json:"max_attempts"`
	LastStatusCode *int       `json:"last_status_code"`
	LastError      string     `json:"last_error,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	DeliveredAt    *time.Time `json:"delivered_at"`
	NextAttemptAt  *time.Time `json:"next_attempt_at"`
	FinalizedAt    *time.Time `json:"finalized_at"`
	Attempts       []Attempt  `json:"attempts"`
}

func deliveryFromRow(row *dbsqlc.OutboxDelivery) (*Delivery, error) {
	d := &Delivery{
		ID:             row.ID,
		EventID:        row.EventID,
		SubscriptionID: row.SubscriptionID,
		State:          DeliveryState(row.State),
		Attempt:        int(row.Attempts),
		MaxAttempts:    int(row.MaxAttempts),
		LastError:      deref(row.LastError),
		CreatedAt:      row.CreatedAt,
		DeliveredAt:    row.DeliveredAt,
		NextAttemptAt:  row.NextAttemptAt,
		FinalizedAt:    row.FinalizedAt,
		Attempts:       []Attempt{},
	}
	if row.LastStatusCode != nil {
		code := int(*row.LastStatusCode)
		d.LastStatusCode = &code
	}
	if len(row.AttemptLog) > 0 {
		if err := json.Unmarshal(row.AttemptLog, &d.Attempts); err != nil {
			return nil, fmt.Errorf("decode attempts of delivery %d: %w", row.ID, err)
		}
	}
	return d, nil
}

// DeliveryListParams filter DeliveryList. Zero values do not filter.
type DeliveryListParams struct {
	EventID        string
	SubscriptionID string
	State          DeliveryState

	// OrganizationID keeps deliveries to that organization's subscriptions.
	OrganizationID string
	// AgentID and EventType filter by the delivered event.
	AgentID   string
	EventType string
	// Since and Until bound the delivery's creation time: [Since, Until).
	Since, Until *time.Time

	// Before continues a listing below this delivery id (lists are newest first).
	Before int64

	// Limit caps the result. Defaults to 100; at most 1,000.
	Limit int
}

// DeliveryList lists deliveries, newest first.
func (s *Store) DeliveryList(ctx context.Context, params *DeliveryListParams) ([]*Delivery, error) {
	if params == nil {
		params = &DeliveryListParams{}
	}
	var before, minID *int64
	if params.Before > 0 {
		before = &params.Before
	}
	// Time bounds become id bounds too, so the walk newest first starts and
	// stops where they do rather than filtering the whole log.
	if params.Until != nil {
		id, err := s.JobIDAt(ctx, params.Until.Add(2*JobIDMargin))
		if err != nil {
			return nil, err
		}
		if before == nil || id < *before {
			before = &id
		}
	}
	if params.Since != nil {
		id, err := s.JobIDAt(ctx, *params.Since)
		if err != nil {
			return nil, err
		}
		minID = &id
	}
	rows, err := s.queries.DeliveryList(ctx, s.on(s.db), &dbsqlc.DeliveryListParams{
		EventID:        nullable(params.EventID),
		SubscriptionID: nullable(params.SubscriptionID),
		State:          nullable(string(params.State)),
		OrganizationID: nullable(params.OrganizationID),
		AgentID:        nullable(params.AgentID),
		EventType:      nullable(params.EventType),
		Since:          params.Since,
		Until:          params.Until,
		BeforeID:       before,
		MinID:          minID,
		Max:            int32(listLimit(params.Limit)), //nolint:gosec // bounded by listLimit
	})
	if err != nil {
		return nil, translateError("list deliveries", err)
	}
	deliveries := make([]*Delivery, 0, len(rows))
	for _, row := range rows {
		d, err := deliveryFromRow(&row.OutboxDelivery)
		if err != nil {
			return nil, err
		}
		deliveries = append(deliveries, d)
	}
	return deliveries, nil
}

// DeliveryGet returns one delivery, or ErrNotFound.
func (s *Store) DeliveryGet(ctx context.Context, id int64) (*Delivery, error) {
	row, err := s.queries.DeliveryGet(ctx, s.on(s.db), id)
	if err != nil {
		return nil, translateError("get delivery", err)
	}
	return deliveryFromRow(row)
}

// DeliveryTarget is what one delivery attempt needs: where to send, what, and the
// secrets to sign with.
type DeliveryTarget struct {
	SubscriptionID string
	URL            string
	Enabled        bool
	// Headers are the subscription's custom request headers, opened.
	Headers map[string]string
	// RetrySchedule is the subscription's own schedule, nil for the default.
	RetrySchedule RetrySchedule

	// RateLimit is the subscription's deliveries per second; 0 is no limit.
	RateLimit int

	// MaxInFlight is the subscription's own cap on deliveries in flight across
	// daemons; 0 is none.
	MaxInFlight int

	Ordering Ordering
	OnDead   OnDead

	// OrganizationID is the subscription's.
	OrganizationID string

	// FailureStreak counts the subscription's failures in a row (see
	// Subscription.FailureStreak).
	FailureStreak int

	// CircuitOpen is true when the circuit breaker has opened; CircuitWait is how
	// long until it lets an attempt through (0: now, as the probe).
	CircuitOpen bool
	CircuitWait time.Duration

	// Event is nil when the event no longer exists.
	Event *Event

	// Secrets are every secret active now, oldest first; during a rotation there
	// are several and each signs.
	Secrets []signing.Secret
}

// DeliveryTarget loads a delivery's subscription, event and active secrets in one
// query. It returns ErrNotFound when the subscription no longer exists.
func (s *Store) DeliveryTarget(ctx context.Context, eventID, subscriptionID string) (*DeliveryTarget, error) {
	targets, errs, err := s.DeliveryTargets(ctx, []DeliveryKey{{EventID: eventID, SubscriptionID: subscriptionID}})
	if err != nil {
		return nil, err
	}
	return targets[0], errs[0]
}

// DeliveryKey names one delivery: an event for a subscription.
type DeliveryKey struct {
	EventID        string
	SubscriptionID string
}

// DeliveryTargets is DeliveryTarget for many deliveries in one round trip. It
// returns, for each key, the target or the error DeliveryTarget would have
// returned (ErrNotFound when the subscription no longer exists); err is set
// only when the lookup itself failed.
func (s *Store) DeliveryTargets(ctx context.Context, keys []DeliveryKey) (targets []*DeliveryTarget, errs []error, err error) {
	params := &dbsqlc.DeliveryTargetsParams{
		EventIds:        make([]string, len(keys)),
		SubscriptionIds: make([]string, len(keys)),
	}
	for i, key := range keys {
		params.EventIds[i], params.SubscriptionIds[i] = key.EventID, key.SubscriptionID
	}
	rows, err := s.queries.DeliveryTargets(ctx, s.on(s.db), params)
	if err != nil {
		return nil, nil, translateError("load deliveries", err)
	}
	targets = make([]*DeliveryTarget, len(keys))
	errs = make([]error, len(keys))
	for i := range errs {
		errs[i] = ErrNotFound
	}
	for _, row := range rows {
		i := int(row.N) - 1
		if i < 0 || i >= len(keys) {
			continue
		}
		targets[i], errs[i] = s.deliveryTargetFromRow(row)
	}
	return targets, errs, nil
}

func (s *Store) deliveryTargetFromRow(row *dbsqlc.DeliveryTargetsRow) (*DeliveryTarget, error) {
	headers, err := s.openHeaders(row.SubscriptionID, row.Headers, row.HeadersKeyID, row.HeadersCiphertext)
	if err != nil {
		return nil, err
	}
	target := &DeliveryTarget{
		SubscriptionID: row.SubscriptionID,
		URL:            row.Url,
		Enabled:        row.Enabled,
		Headers:        headers,
		RetrySchedule:  retryScheduleFromMillis(row.RetryScheduleMs),
		RateLimit:      int(deref32(row.RateLimitPerSecond)),
		MaxInFlight:    int(deref32(row.MaxInFlight)),
		Ordering:       Ordering(row.Ordering),
		OnDead:         OnDead(row.OnDead),
		OrganizationID: deref(row.SubscriptionOrganizationID),
		FailureStreak:  int(row.FailureStreak),
		CircuitOpen:    row.CircuitWaitSeconds >= 0,
		CircuitWait:    time.Duration(max(row.CircuitWaitSeconds, 0) * float64(time.Second)),
	}
	if row.EventFound {
		target.Event = &Event{
			ID:             row.EventID,
			Seq:            row.EventSeq,
			Type:           row.Type,
			OrganizationID: row.OrganizationID,
			AgentID:        row.AgentID,
			Payload:        row.Payload,
			CreatedAt:      row.CreatedAt,
		}
	}
	if len(row.SecretKeyIds) > 0 && s.keyring == nil {
		return nil, ErrNoEncryptionKey
	}
	target.Secrets = make([]signing.Secret, len(row.SecretKeyIds))
	for i, keyID := range row.SecretKeyIds {
		secret, err := s.keyring.Open(keyID, row.SecretCiphertexts[i], []byte(row.SubscriptionID))
		if err != nil {
			return nil, fmt.Errorf("subscription %s: %w", row.SubscriptionID, err)
		}
		target.Secrets[i] = secret
	}
	return target, nil
}

// DeliveriesAnnounceTx tells the River producers of queue, when tx commits,
// that it made jobs due there. River's own insert notification is rate-limited
// per client (one per queue per FetchCooldown), so without this a batch
// committed just after another may wait for the next fetch poll.
func (s *Store) DeliveriesAnnounceTx(ctx context.Context, tx Executor, queue string) error {
	if err := s.queries.DeliveriesAnnounce(ctx, s.on(tx), queue); err != nil {
		return translateError("announce deliveries", err)
	}
	return nil
}
