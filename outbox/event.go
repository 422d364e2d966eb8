package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/outboxd/outboxd/outbox/internal/dbsqlc"
)

// Event is one row of outbox.events: something that happened, to be delivered to
// every subscription that matches it.
type Event struct {
	// ID is the public id (evt_…), sent to receivers as webhook-id. It is stable
	// across retries, redeliveries and replays, so receivers de-duplicate on it.
	ID string `json:"id"`

	// Seq is the event's position in the outbox (the table's id column).
	Seq int64 `json:"-"`

	Type           string          `json:"type"`
	OrganizationID string          `json:"organization_id,omitempty"`
	AgentID        string          `json:"agent_id,omitempty"`
	Payload        json.RawMessage `json:"payload"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
	CreatedAt      time.Time       `json:"created_at"`

	// DispatchedAt is when the relay handed the event to a fan-out job.
	DispatchedAt *time.Time `json:"dispatched_at"`

	// FannedOutAt is when the event's deliveries were created.
	FannedOutAt *time.Time `json:"fanned_out_at"`
}

func eventFromRow(row *dbsqlc.OutboxEvent, eventID string) *Event {
	return &Event{
		ID:             eventID,
		Seq:            row.ID,
		Type:           row.Type,
		OrganizationID: deref(row.OrganizationID),
		AgentID:        deref(row.AgentID),
		Payload:        row.Payload,
		IdempotencyKey: deref(row.IdempotencyKey),
		CreatedAt:      row.CreatedAt,
		DispatchedAt:   row.DispatchedAt,
		FannedOutAt:    row.FannedOutAt,
	}
}

// PublishParams describe an event to publish.
type PublishParams struct {
	// Type is the event type: two or more dot-separated words of a-z, 0-9 and _,
	// like agent.step.completed. Required.
	Type string

	// Payload is a JSON object, at most outbox.settings.max_payload_bytes bytes
	// (256 KiB by default). Nil means {}.
	Payload json.RawMessage

	// AgentID scopes the event to an agent; agent-scoped subscriptions see only
	// their agent's events. Optional.
	AgentID string

	// OrganizationID scopes the event to an organization. Optional.
	OrganizationID string

	// IdempotencyKey, if set, makes publishing idempotent within the organization:
	// publishing again with the same key returns the first event. Optional.
	IdempotencyKey string
}

// defaultPublisher publishes into DefaultSchema for the package-level PublishTx.
var defaultPublisher = sync.OnceValue(func() *Store {
	store, err := NewStore(nil, nil)
	if err != nil {
		panic(err) // DefaultSchema is valid
	}
	return store
})

// PublishTx publishes an event inside the caller's transaction, in the default
// schema ("outbox"): the event exists if and only if tx commits. It does no
// network I/O beyond the one statement on tx. Use Store.PublishTx for another
// schema.
//
// Bad input returns a *ValidationError and changes nothing.
func PublishTx(ctx context.Context, tx Executor, params *PublishParams) (*Event, error) {
	return defaultPublisher().PublishTx(ctx, tx, params)
}

// PublishTx publishes an event inside the caller's transaction. See PublishTx.
func (s *Store) PublishTx(ctx context.Context, tx Executor, params *PublishParams) (*Event, error) {
	payload := params.Payload
	if len(payload) == 0 {
		payload = json.RawMessage("{}")
	} else if !json.Valid(payload) {
		return nil, invalid("payload", "not valid JSON")
	} else if path, key := findNUL(payload); path != "" {
		if key {
			return nil, invalid(path, `a key must not contain NUL characters (\u0000): jsonb cannot store them`)
		}
		return nil, invalid(path, `must not contain NUL characters (\u0000): jsonb cannot store them`)
	}
	if err := checkID("agent_id", params.AgentID, "events_agent_id_length"); err != nil {
		return nil, err
	}
	if err := checkID("organization_id", params.OrganizationID, "events_organization_id_length"); err != nil {
		return nil, err
	}
	if err := checkID("idempotency_key", params.IdempotencyKey, "events_idempotency_key_length"); err != nil {
		return nil, err
	}
	if err := checkEncoding("type", params.Type); err != nil { // the rest is checked by the database, quoting the type
		return nil, err
	}
	refused := func(err error) error {
		err = translateError("publish", err)
		var validation *ValidationError
		if errors.As(err, &validation) && validation.Field == "" {
			// The text parameters are checked above: what Postgres still refuses
			// without naming a column (a lone \ud800) is in the payload.
			validation.Field = "payload"
		}
		return err
	}
	if params.IdempotencyKey == "" {
		// The plain INSERT: no function call, the cheapest publish there is.
		row, err := s.queries.EventInsert(ctx, s.on(tx), &dbsqlc.EventInsertParams{
			Type:           params.Type,
			Payload:        payload,
			AgentID:        nullable(params.AgentID),
			OrganizationID: nullable(params.OrganizationID),
		})
		if err != nil {
			return nil, refused(err)
		}
		return eventFromRow(&row.OutboxEvent, row.EventID), nil
	}
	row, err := s.queries.EventPublish(ctx, s.on(tx), &dbsqlc.EventPublishParams{
		Type:           params.Type,
		Payload:        payload,
		AgentID:        nullable(params.AgentID),
		OrganizationID: nullable(params.OrganizationID),
		IdempotencyKey: nullable(params.IdempotencyKey),
	})
	if err != nil {
		return nil, refused(err)
	}
	return eventFromRow(&dbsqlc.OutboxEvent{
		ID: row.ID, Type: row.Type, OrganizationID: row.OrganizationID, AgentID: row.AgentID, Payload: row.Payload,
		IdempotencyKey: row.IdempotencyKey, CreatedAt: row.CreatedAt, DispatchedAt: row.DispatchedAt, FannedOutAt: row.FannedOutAt,
	}, row.EventID), nil
}

// Publish publishes an event in its own transaction.
func (s *Store) Publish(ctx context.Context, params *PublishParams) (*Event, error) {
	return s.PublishTx(ctx, s.db, params)
}

// EventGet returns the event with public id eventID, or ErrNotFound.
func (s *Store) EventGet(ctx context.Context, eventID string) (*Event, error) {
	row, err := s.queries.EventGetByEventID(ctx, s.on(s.db), eventID)
	if err != nil {
		return nil, translateError("get event", err)
	}
	return eventFromRow(&dbsqlc.OutboxEvent{
		ID: row.ID, Type: row.Type, OrganizationID: row.OrganizationID, AgentID: row.AgentID, Payload: row.Payload,
		IdempotencyKey: row.IdempotencyKey, CreatedAt: row.CreatedAt, DispatchedAt: row.DispatchedAt, FannedOutAt: row.FannedOutAt,
	}, row.EventID), nil
}

// Claim is what one claim of the relay took: its events and the deliveries to
// create for them.
type Claim struct {
	// Seqs are the claimed events' positions, in order.
	Seqs []int64

	// Deliveries are one per (claimed event, matching enabled subscription), in
	// event order.
	Deliveries []FanoutDelivery

	// OrderedAgents are the agents ('' for events without one) of the claimed
	// events when any enabled subscription orders its deliveries by agent, sorted
	// (none otherwise): their lines must be locked (OrderedLockTx) before the
	// deliveries are created, and promoted (OrderedPromoteTx) after.
	OrderedAgents []string
}

// EventsPending reports whether any event waits for the relay (including events
// another relay is claiming right now). It is one cheap statement, for an idle
// relay to run before it opens a claim transaction.
func (s *Store) EventsPending(ctx context.Context) (bool, error) {
	pending, err := s.queries.EventsUndispatchedExist(ctx, s.on(s.db))
	if err != nil {
		return false, translateError("look for events", err)
	}
	return pending, nil
}

// EventClaimFanoutTx claims up to max undispatched events, oldest first, skipping
// rows another transaction holds, marks them dispatched and fanned out, and
// returns the deliveries to create for them. The claim lasts as long as tx: tx
// must also create the deliveries, so that both happen or neither does; roll it
// back and the events are claimable again.
func (s *Store) EventClaimFanoutTx(ctx context.Context, tx Executor, max int) (*Claim, error) {
	rows, err := s.queries.EventClaimFanout(ctx, s.on(tx), int32(min(max, 1<<30))) //nolint:gosec // bounded
	if err != nil {
		return nil, translateError("claim events", err)
	}
	claim := &Claim{Deliveries: make([]FanoutDelivery, 0, len(rows))}
	var last int64
	for _, row := range rows {
		if row.EventSeq != last {
			claim.Seqs = append(claim.Seqs, row.EventSeq)
			last = row.EventSeq
			if row.OrderedAny && !slices.Contains(claim.OrderedAgents, deref(row.AgentID)) {
				claim.OrderedAgents = append(claim.OrderedAgents, deref(row.AgentID))
			}
		}
		if row.SubscriptionID == "" {
			continue // matches no subscription
		}
		d := FanoutDelivery{
			EventSeq:       row.EventSeq,
			EventID:        row.EventID,
			AgentID:        deref(row.AgentID),
			SubscriptionID: row.SubscriptionID,
			RetrySchedule:  retryScheduleFromMillis(row.RetryScheduleMs),
			Ordered:        Ordering(row.Ordering) == OrderingAgent,
		}
		claim.Deliveries = append(claim.Deliveries, d)
	}
	slices.Sort(claim.OrderedAgents)
	return claim, nil
}

// FanoutDelivery is one delivery to create: an event for a subscription.
type FanoutDelivery struct {
	EventSeq       int64
	EventID        string
	AgentID        string
	SubscriptionID string

	// RetrySchedule is the subscription's own schedule, nil for the default.
	RetrySchedule RetrySchedule

	// Ordered is true when the subscription orders deliveries by agent.
	Ordered bool
}

// EventFanoutTx marks the claimed events fanned out and returns one FanoutDelivery
// per (event, matching enabled subscription), in event order. Events already
// fanned out are skipped, so calling it twice for a batch yields nothing the second
// time. tx must also create the deliveries, so that both happen or neither does.
func (s *Store) EventFanoutTx(ctx context.Context, tx Executor, eventSeqs []int64) ([]FanoutDelivery, error) {
	rows, err := s.queries.EventFanout(ctx, s.on(tx), eventSeqs)
	if err != nil {
		return nil, translateError("fan out events", err)
	}
	deliveries := make([]FanoutDelivery, len(rows))
	for i, row := range rows {
		deliveries[i] = FanoutDelivery{
			EventSeq:       row.EventSeq,
			EventID:        row.EventID,
			AgentID:        deref(row.AgentID),
			SubscriptionID: row.SubscriptionID,
			RetrySchedule:  retryScheduleFromMillis(row.RetryScheduleMs),
			Ordered:        Ordering(row.Ordering) == OrderingAgent,
		}
	}
	return deliveries, nil
}

// Backlog describes events not yet handed to a fan-out job.
type Backlog struct {
	// OldestAge is the age of the oldest undispatched event, 0 when there is none.
	OldestAge time.Duration
	// Undispatched counts them, up to 100,000.
	Undispatched int64
}

// EventBacklog measures the relay's backlog.
func (s *Store) EventBacklog(ctx context.Context) (*Backlog, error) {
	row, err := s.queries.EventBacklog(ctx, s.on(s.db))
	if err != nil {
		return nil, translateError("measure backlog", err)
	}
	return &Backlog{
		OldestAge:    time.Duration(row.OldestAgeSeconds * float64(time.Second)),
		Undispatched: row.Undispatched,
	}, nil
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// WakeChannel is the LISTEN channel on which relays of schema wait to be woken.
func WakeChannel(schema string) string { return schema + ".wake" }

// WakeTx wakes the relays when tx commits, so they claim new events now rather
// than at their next poll.
func (s *Store) WakeTx(ctx context.Context, tx Executor) error {
	return translateError("wake relays", s.queries.Wake(ctx, s.on(tx)))
}
