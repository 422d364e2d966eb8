package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/outboxd/outboxd/outbox/internal/dbsqlc"
	"github.com/outboxd/outboxd/outbox/signing"
)

// This file holds the management operations behind the REST API and the CLI:
// editing subscriptions, agents' webhooks, listing events, finding what a recovery re-delivers.

func isUniqueViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == constraint
}

// SubscriptionUpdateParams is a partial update: nil fields are left as they are.
type SubscriptionUpdateParams struct {
	URL         *string
	EventTypes  []string // nil leaves them; empty is refused
	Description *string
	// Headers replaces every custom header (values are sealed, as on create);
	// nil leaves them, empty removes them.
	Headers map[string]string

	// RetrySchedule replaces the schedule when SetRetrySchedule is true; a nil
	// schedule then returns to the daemon's default.
	RetrySchedule    RetrySchedule
	SetRetrySchedule bool

	// Enabled enables or disables the subscription. Enabling clears the reason it
	// was disabled.
	Enabled *bool

	// RateLimit sets deliveries per second; 0 removes the limit.
	RateLimit *int

	// MaxInFlight sets the cap on deliveries in flight; 0 returns to the daemon's
	// default.
	MaxInFlight *int

	Ordering *Ordering
	OnDead   *OnDead
}

// SubscriptionUpdate applies a partial update and returns the subscription.
func (s *Store) SubscriptionUpdate(ctx context.Context, id string, params *SubscriptionUpdateParams) (*Subscription, error) {
	var sub *Subscription
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		sub, err = s.SubscriptionUpdateTx(ctx, tx, id, params)
		return err
	})
	return sub, err
}

// SubscriptionUpdateTx applies a partial update inside the caller's transaction.
func (s *Store) SubscriptionUpdateTx(ctx context.Context, tx Executor, id string, params *SubscriptionUpdateParams) (*Subscription, error) {
	exec := s.on(tx)
	row, err := s.queries.SubscriptionGetForUpdate(ctx, exec, id)
	if err != nil {
		return nil, translateError("update subscription", err)
	}
	current, err := subscriptionFromRow(row)
	if err != nil {
		return nil, err
	}

	// Validate the merged result with the same rules as a new subscription.
	merged := &SubscriptionCreateParams{
		URL:           current.URL,
		EventTypes:    current.EventTypes,
		Description:   current.Description,
		Headers:       params.Headers, // only new headers are checked; the stored ones were when written
		RetrySchedule: current.RetrySchedule,
		AgentID:       current.AgentID,
		RateLimit:     current.RateLimit,
		MaxInFlight:   current.MaxInFlight,
		Ordering:      current.Ordering,
		OnDead:        current.OnDead,
		Secret:        nil,
	}
	if params.RateLimit != nil {
		merged.RateLimit = *params.RateLimit
	}
	if params.MaxInFlight != nil {
		merged.MaxInFlight = *params.MaxInFlight
	}
	if params.Ordering != nil {
		merged.Ordering = *params.Ordering
	}
	if params.OnDead != nil {
		merged.OnDead = *params.OnDead
	}
	if params.URL != nil {
		merged.URL = *params.URL
	}
	if params.EventTypes != nil {
		if len(params.EventTypes) == 0 {
			return nil, invalid("event_types", "at least one pattern (use [\"*\"] for every event)")
		}
		merged.EventTypes = params.EventTypes
	}
	if params.Description != nil {
		merged.Description = *params.Description
	}
	if params.SetRetrySchedule {
		merged.RetrySchedule = params.RetrySchedule
	}
	if err := s.validateSubscriptionFields(ctx, merged, params.URL != nil); err != nil {
		return nil, err
	}
	if params.Headers != nil {
		if err := s.headersSetTx(ctx, exec, id, params.Headers); err != nil {
			return nil, err
		}
	}
	row, err = s.queries.SubscriptionUpdate(ctx, exec, &dbsqlc.SubscriptionUpdateParams{
		ID:                 id,
		Url:                merged.URL,
		EventTypes:         merged.EventTypes,
		Description:        merged.Description,
		RetryScheduleMs:    merged.RetrySchedule.millis(),
		RateLimitPerSecond: rateLimitParam(merged.RateLimit),
		MaxInFlight:        rateLimitParam(merged.MaxInFlight),
		Ordering:           string(merged.Ordering.orDefault()),
		OnDead:             string(merged.OnDead.orDefault()),
	})
	if err != nil {
		return nil, translateError("update subscription", err)
	}
	if params.Enabled != nil && *params.Enabled != row.Enabled {
		if *params.Enabled {
			_, err = s.queries.SubscriptionEnable(ctx, exec, id)
		} else {
			_, err = s.queries.SubscriptionDisable(ctx, exec, &dbsqlc.SubscriptionDisableParams{ID: id, Reason: nullable("disabled by an operator")})
		}
		if err != nil {
			return nil, translateError("update subscription", err)
		}
		if row, err = s.queries.SubscriptionGet(ctx, exec, id); err != nil {
			return nil, translateError("update subscription", err)
		}
	}
	sub, err := subscriptionFromRow(row)
	if err != nil {
		return nil, err
	}
	if current.Ordering == OrderingAgent || sub.Ordering == OrderingAgent {
		if err := s.orderedResumeTx(ctx, tx, sub); err != nil {
			return nil, err
		}
	}
	return sub, nil
}

// SubscriptionEnable enables a subscription and clears why it was disabled; an
// ordered one's lines resume where they stopped. It reports whether it was
// disabled before.
func (s *Store) SubscriptionEnable(ctx context.Context, id string) (bool, error) {
	enabled := false
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		exec := s.on(tx)
		n, err := s.queries.SubscriptionEnable(ctx, exec, id)
		if err != nil {
			return translateError("enable subscription", err)
		}
		row, err := s.queries.SubscriptionGet(ctx, exec, id)
		if err != nil {
			return translateError("enable subscription", err)
		}
		enabled = n > 0
		sub, err := subscriptionFromRow(row)
		if err != nil || !enabled || sub.Ordering != OrderingAgent {
			return err
		}
		return s.orderedResumeTx(ctx, tx, sub)
	})
	return enabled, err
}

// AgentWebhookGet returns the agent's webhook subscription, or ErrNotFound.
func (s *Store) AgentWebhookGet(ctx context.Context, agentID string) (*Subscription, error) {
	row, err := s.queries.AgentWebhookGet(ctx, s.on(s.db), nullable(agentID))
	if err != nil {
		return nil, translateError("get agent webhook", err)
	}
	return subscriptionFromRow(row)
}

// AgentWebhookPutParams configure an agent's webhook. Nil fields keep their value
// on an existing webhook and take the defaults on a new one.
type AgentWebhookPutParams struct {
	AgentID        string
	OrganizationID string // for a new webhook; an existing one keeps its organization
	URL            string // required
	EventTypes     []string
	Enabled        *bool
	// Secret replaces the signing secret at once (old ones stop signing). Nil keeps
	// it, or generates one for a new webhook.
	Secret signing.Secret
}

// AgentWebhookPutResult is the agent's webhook; Secret is set when it was
// generated, to be shown once.
type AgentWebhookPutResult struct {
	Subscription *Subscription
	Created      bool
	Secret       signing.Secret
}

// AgentWebhookPut creates or replaces an agent's webhook configuration.
func (s *Store) AgentWebhookPut(ctx context.Context, params *AgentWebhookPutParams) (*AgentWebhookPutResult, error) {
	if params.AgentID == "" {
		return nil, invalid("agent_id", "required")
	}
	result := &AgentWebhookPutResult{}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		exec := s.on(tx)
		row, err := s.queries.AgentWebhookGet(ctx, exec, nullable(params.AgentID))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			created, err := s.SubscriptionCreateTx(ctx, tx, &SubscriptionCreateParams{
				URL:            params.URL,
				EventTypes:     params.EventTypes,
				AgentID:        params.AgentID,
				OrganizationID: params.OrganizationID,
				Secret:         params.Secret,
				AgentWebhook:   true,
			})
			if err != nil {
				return err
			}
			result.Subscription, result.Created = created.Subscription, true
			if params.Secret == nil {
				result.Secret = created.Secret
			}
			if params.Enabled != nil && !*params.Enabled {
				result.Subscription, err = s.SubscriptionUpdateTx(ctx, tx, created.ID, &SubscriptionUpdateParams{Enabled: params.Enabled})
			}
			return err
		case err != nil:
			return translateError("get agent webhook", err)
		}
		if params.URL == "" {
			return invalid("webhook_url", "required")
		}
		eventTypes := params.EventTypes
		if eventTypes == nil {
			eventTypes = []string{"*"}
		}
		sub, err := s.SubscriptionUpdateTx(ctx, tx, row.ID, &SubscriptionUpdateParams{
			URL: &params.URL, EventTypes: eventTypes, Enabled: params.Enabled,
		})
		if err != nil {
			return err
		}
		if params.Secret != nil {
			if len(params.Secret) < signing.SecretMinBytes || len(params.Secret) > signing.SecretMaxBytes {
				return invalid("webhook_secret", "must be %d to %d bytes", signing.SecretMinBytes, signing.SecretMaxBytes)
			}
			if s.keyring == nil {
				return ErrNoEncryptionKey
			}
			if err := s.queries.AgentWebhookSecretsExpire(ctx, exec, row.ID); err != nil {
				return translateError("replace secret", err)
			}
			if err := s.secretInsert(ctx, exec, row.ID, params.Secret, nil); err != nil {
				return err
			}
		}
		result.Subscription = sub
		return nil
	})
	if err != nil {
		return nil, err
	}
	return result, nil
}

// EventListParams filter EventList. Zero values do not filter.
type EventListParams struct {
	OrganizationID string
	AgentID        string
	Type           string

	// Before continues a listing below this outbox position (Event.Seq); lists are
	// newest first.
	Before int64

	// Limit caps the result. Defaults to 100; at most 1,000.
	Limit int
}

// EventList lists events, newest first.
func (s *Store) EventList(ctx context.Context, params *EventListParams) ([]*Event, error) {
	if params == nil {
		params = &EventListParams{}
	}
	var before *int64
	if params.Before > 0 {
		before = &params.Before
	}
	rows, err := s.queries.EventList(ctx, s.on(s.db), &dbsqlc.EventListParams{
		OrganizationID: nullable(params.OrganizationID),
		AgentID:        nullable(params.AgentID),
		Type:           nullable(params.Type),
		BeforeSeq:      before,
		Max:            int32(listLimit(params.Limit)), //nolint:gosec // bounded by listLimit
	})
	if err != nil {
		return nil, translateError("list events", err)
	}
	events := make([]*Event, len(rows))
	for i, row := range rows {
		events[i] = eventFromRow(&row.OutboxEvent, row.EventID)
	}
	return events, nil
}

// FailedDelivery is a delivery that ended dead or cancelled, for recovery.
type FailedDelivery struct {
	ID int64
	// Ordered is true for a delivery of an ordered line: it is retried through
	// its line (OrderedRequeueTx), not made due at once.
	Ordered bool
}

// DeliveryFailedIDs returns up to limit deliveries of the subscription that ended
// dead or cancelled in [since, until), in id order after afterID.
func (s *Store) DeliveryFailedIDs(ctx context.Context, subscriptionID string, since, until time.Time, afterID int64, limit int) ([]FailedDelivery, error) {
	rows, err := s.queries.DeliveryFailedIDs(ctx, s.on(s.db), &dbsqlc.DeliveryFailedIDsParams{
		SubscriptionID: subscriptionID,
		Since:          &since,
		Until:          &until,
		AfterID:        afterID,
		Max:            int32(listLimit(limit)), //nolint:gosec // bounded by listLimit
	})
	if err != nil {
		return nil, translateError("find failed deliveries", err)
	}
	failed := make([]FailedDelivery, len(rows))
	for i, row := range rows {
		failed[i] = FailedDelivery{ID: row.ID, Ordered: row.Ordered}
	}
	return failed, nil
}

// RecoveryKind is the River job kind of recoveries: re-delivering what a
// subscription missed in a time window.
const RecoveryKind = "outboxd.recover"

// Recovery re-delivers what a subscription missed in [Since, Until): deliveries
// that ended dead or cancelled (it was disabled) are retried, and events that
// were published while it was disabled get a delivery. It runs in the background
// as a River job; ID is the job's.
type Recovery struct {
	ID             int64      `json:"id"`
	SubscriptionID string     `json:"subscription_id"`
	Since          time.Time  `json:"since"`
	Until          time.Time  `json:"until"`
	State          string     `json:"state"` // pending, running, completed, failed
	Retried        int64      `json:"retried"`
	Created        int64      `json:"created"`
	Error          string     `json:"error,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	FinishedAt     *time.Time `json:"finished_at"`
}

// RecoveryProgress is how far a recovery has got; it is kept in the recovery
// job's metadata so a rescued recovery resumes rather than starts over.
type RecoveryProgress struct {
	Retried int64 `json:"recovery_retried"`
	LastID  int64 `json:"recovery_last_id"`
	Created int64 `json:"recovery_created"`
	LastSeq int64 `json:"recovery_last_seq"`
}

// RecoveryProgressSet records a running recovery's progress.
func (s *Store) RecoveryProgressSet(ctx context.Context, recoveryID int64, progress *RecoveryProgress) error {
	data, err := json.Marshal(progress)
	if err != nil {
		return err
	}
	err = s.queries.RecoveryProgressSet(ctx, s.on(s.db), &dbsqlc.RecoveryProgressSetParams{ID: recoveryID, Progress: data})
	return translateError("record recovery progress", err)
}

// Secret rotation grace periods.
const (
	SecretRotateGraceDefault = 24 * time.Hour
	SecretRotateGraceMax     = 7 * 24 * time.Hour
)

// SecretRotateResult is a subscription's new signing secret, shown once, and when
// the secrets it replaces stop signing.
type SecretRotateResult struct {
	Secret            signing.Secret
	PreviousExpiresAt time.Time
}

// MarshalJSON shows the secret as whsec_….
func (r *SecretRotateResult) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Secret            string    `json:"secret"`
		PreviousExpiresAt time.Time `json:"previous_secrets_expire_at"`
	}{r.Secret.String(), r.PreviousExpiresAt})
}

// SubscriptionSecretRotate gives a subscription a new signing secret. The current
// ones keep signing for grace (default 24 h, at most 7 days), so receivers can
// switch without losing a delivery: during the grace every delivery carries a
// signature by each.
func (s *Store) SubscriptionSecretRotate(ctx context.Context, subscriptionID string, grace time.Duration) (*SecretRotateResult, error) {
	if grace == 0 {
		grace = SecretRotateGraceDefault
	}
	if grace < 0 || grace > SecretRotateGraceMax {
		return nil, invalid("grace", "must be more than 0 and at most %s", SecretRotateGraceMax)
	}
	if s.keyring == nil {
		return nil, ErrNoEncryptionKey
	}
	secret, err := signing.GenerateSecret()
	if err != nil {
		return nil, err
	}
	result := &SecretRotateResult{Secret: secret}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		exec := s.on(tx)
		if _, err := s.queries.SubscriptionGetForUpdate(ctx, exec, subscriptionID); err != nil {
			return translateError("rotate secret", err)
		}
		now, err := s.queries.TransactionNow(ctx, exec)
		if err != nil {
			return translateError("rotate secret", err)
		}
		result.PreviousExpiresAt = now.Add(grace)
		if _, err := s.queries.SecretRotateExpireCurrent(ctx, exec, &dbsqlc.SecretRotateExpireCurrentParams{
			SubscriptionID: subscriptionID, ExpiresAt: result.PreviousExpiresAt,
		}); err != nil {
			return translateError("rotate secret", err)
		}
		if err := s.queries.SecretRotatePrune(ctx, exec, subscriptionID); err != nil {
			return translateError("rotate secret", err)
		}
		return s.secretInsert(ctx, exec, subscriptionID, secret, nil)
	})
	if err != nil {
		return nil, err
	}
	return result, nil
}

// RateLimitTake takes one delivery slot of a rate-limited subscription. When none
// is free it returns false and how long until one is.
func (s *Store) RateLimitTake(ctx context.Context, subscriptionID string) (bool, time.Duration, error) {
	row, err := s.queries.RateLimitTake(ctx, s.on(s.db), subscriptionID)
	if err != nil {
		return false, 0, translateError("take rate limit slot", err)
	}
	return row.Allowed, time.Duration(max(row.WaitSeconds, 0) * float64(time.Second)), nil
}
