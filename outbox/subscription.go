package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/outbox/internal/dbsqlc"
	"github.com/outboxd/outboxd/outbox/signing"
)

// Subscription is an endpoint and the events it receives.
type Subscription struct {
	ID             string `json:"id"`
	URL            string `json:"url"`
	OrganizationID string `json:"organization_id,omitempty"`
	AgentID        string `json:"agent_id,omitempty"`

	// EventTypes are the patterns the subscription matches: exact types, prefixes
	// like agent.step.*, or * for every event.
	EventTypes []string `json:"event_types"`

	Enabled     bool   `json:"enabled"`
	Description string `json:"description,omitempty"`

	// HeaderNames names the custom headers sent with every delivery, in byte
	// order. Their values are write-only: stored encrypted and never shown.
	HeaderNames []string `json:"header_names"`

	// RetrySchedule is the subscription's own schedule; nil uses the daemon's default.
	RetrySchedule RetrySchedule `json:"retry_schedule,omitempty"`

	// RateLimit caps deliveries to this subscription per second, across every
	// daemon (plus a burst of one); 0 is no limit.
	RateLimit int `json:"rate_limit,omitempty"`

	// MaxInFlight caps its deliveries in flight at once across every daemon; 0
	// leaves only each daemon's default cap (DeliveryConfig.MaxInFlightDefault).
	MaxInFlight int `json:"max_in_flight,omitempty"`

	// Ordering is OrderingAgent to deliver each agent's events one at a time in
	// outbox order, or OrderingNone.
	Ordering Ordering `json:"ordering"`

	// OnDead says what an ordered line does when a delivery ends dead.
	OnDead OnDead `json:"on_dead"`

	// AgentWebhook marks the agent's webhook configuration (/v1/agents/{id}/webhook):
	// at most one per agent.
	AgentWebhook bool `json:"agent_webhook,omitempty"`

	// FailureStreak counts failures in a row: failed attempts while the circuit is
	// closed, then failed probes (attempts already in flight when it opened do not
	// count). FailingSince is when the run began, and CircuitOpenUntil when the
	// circuit breaker next lets an attempt through.
	FailureStreak    int        `json:"failure_streak"`
	FailingSince     *time.Time `json:"failing_since,omitempty"`
	CircuitOpenUntil *time.Time `json:"circuit_open_until,omitempty"`

	DisabledReason string     `json:"disabled_reason,omitempty"`
	DisabledAt     *time.Time `json:"disabled_at,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
}

func subscriptionFromRow(row *dbsqlc.OutboxSubscription) (*Subscription, error) {
	return &Subscription{
		ID:               row.ID,
		URL:              row.Url,
		OrganizationID:   deref(row.OrganizationID),
		AgentID:          deref(row.AgentID),
		EventTypes:       row.EventTypes,
		Enabled:          row.Enabled,
		Description:      row.Description,
		HeaderNames:      rowHeaderNames(row),
		RetrySchedule:    retryScheduleFromMillis(row.RetryScheduleMs),
		AgentWebhook:     row.AgentWebhook,
		RateLimit:        int(deref32(row.RateLimitPerSecond)),
		MaxInFlight:      int(deref32(row.MaxInFlight)),
		Ordering:         Ordering(row.Ordering),
		OnDead:           OnDead(row.OnDead),
		FailureStreak:    int(row.FailureStreak),
		FailingSince:     row.FailingSince,
		CircuitOpenUntil: row.CircuitOpenUntil,
		DisabledReason:   deref(row.DisabledReason),
		DisabledAt:       row.DisabledAt,
		CreatedAt:        row.CreatedAt,
		UpdatedAt:        row.UpdatedAt,
	}, nil
}

var (
	eventTypePattern       = regexp.MustCompile(`^[a-z0-9_]+(\.[a-z0-9_]+)+$`)
	eventTypePrefixPattern = regexp.MustCompile(`^[a-z0-9_]+(\.[a-z0-9_]+)*\.\*$`)
)

// ValidateEventTypePattern checks one entry of Subscription.EventTypes.
func ValidateEventTypePattern(pattern string) error {
	if pattern == "*" || eventTypePrefixPattern.MatchString(pattern) || (eventTypePattern.MatchString(pattern) && len(pattern) <= 200) {
		return nil
	}
	return fmt.Errorf("%q is not an event type (agent.step.completed), a prefix (agent.step.*) or *", pattern)
}

// Limits on RetrySchedule.
const (
	RetryScheduleMaxEntries = 50
	RetryDelayMax           = 7 * 24 * time.Hour
)

// RetrySchedule lists the delays between attempts: the first attempt is immediate,
// then one retry after each delay. Its JSON form is a list of Go durations
// (["5s","5m"]).
type RetrySchedule []time.Duration

// ParseRetrySchedule parses a comma-separated list of durations: "1s,5s,5m".
func ParseRetrySchedule(s string) (RetrySchedule, error) {
	var schedule RetrySchedule
	for field := range strings.SplitSeq(s, ",") {
		field = strings.TrimSpace(field)
		d, err := time.ParseDuration(field)
		if err != nil {
			return nil, fmt.Errorf("%q is not a duration like 5s, 5m or 2h", field)
		}
		schedule = append(schedule, d)
	}
	return schedule, schedule.Validate()
}

// Validate checks the schedule's length and delays.
func (r RetrySchedule) Validate() error {
	if len(r) > RetryScheduleMaxEntries {
		return fmt.Errorf("at most %d retries, not %d", RetryScheduleMaxEntries, len(r))
	}
	for _, d := range r {
		if d < time.Millisecond || d > RetryDelayMax {
			return fmt.Errorf("delay %s is out of range: between 1ms and %s", d, RetryDelayMax)
		}
	}
	return nil
}

// String formats the schedule as ParseRetrySchedule reads it.
func (r RetrySchedule) String() string {
	parts := make([]string, len(r))
	for i, d := range r {
		parts[i] = d.String()
	}
	return strings.Join(parts, ",")
}

func (r RetrySchedule) MarshalJSON() ([]byte, error) {
	parts := make([]string, len(r))
	for i, d := range r {
		parts[i] = d.String()
	}
	return json.Marshal(parts)
}

// UnmarshalJSON reads a list of Go durations. Its errors are *ValidationError
// naming retry_schedule, with the index of a bad entry (retry_schedule[2]).
func (r *RetrySchedule) UnmarshalJSON(data []byte) error {
	var parts []string
	if err := json.Unmarshal(data, &parts); err != nil {
		return invalid("retry_schedule", `a list of durations like ["5s","5m"]`)
	}
	schedule := make(RetrySchedule, len(parts))
	for i, p := range parts {
		d, err := time.ParseDuration(p)
		if err != nil {
			return invalid(fmt.Sprintf("retry_schedule[%d]", i), "%q is not a duration like 5s, 5m or 2h", p)
		}
		schedule[i] = d
	}
	*r = schedule
	return nil
}

func (r RetrySchedule) millis() []int64 {
	if r == nil {
		return nil
	}
	ms := make([]int64, len(r))
	for i, d := range r {
		ms[i] = d.Milliseconds()
	}
	return ms
}

func retryScheduleFromMillis(ms []int64) RetrySchedule {
	if ms == nil {
		return nil
	}
	r := make(RetrySchedule, len(ms))
	for i, m := range ms {
		r[i] = time.Duration(m) * time.Millisecond
	}
	return r
}

// Headers outboxd sets itself, which a subscription may not override.
var reservedHeaders = map[string]bool{
	"Webhook-Id": true, "Webhook-Timestamp": true, "Webhook-Signature": true,
	"Content-Type": true, "Content-Length": true, "User-Agent": true, "Host": true,
	"Connection": true, "Transfer-Encoding": true, "Te": true, "Upgrade": true, "Trailer": true,
	"Keep-Alive": true, "Proxy-Connection": true, "Proxy-Authorization": true,
}

// ValidateHeaders checks custom request headers: valid names and values, and none
// that outboxd sets itself.
func ValidateHeaders(headers map[string]string) error {
	for name, value := range headers {
		if !validHeaderName(name) {
			return fmt.Errorf("%q is not a valid header name", name)
		}
		if reservedHeaders[http.CanonicalHeaderKey(name)] {
			return fmt.Errorf("header %q is set by outboxd and cannot be overridden", name)
		}
		if !validHeaderValue(value) {
			return fmt.Errorf("header %q has an invalid value (control characters are not allowed)", name)
		}
	}
	return nil
}

// validHeaderName reports whether name is an RFC 9110 token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// validHeaderValue rejects control characters other than tab, which would let a
// value split into a second header.
func validHeaderValue(value string) bool {
	for i := 0; i < len(value); i++ {
		if c := value[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// SubscriptionCreateParams describe a new subscription.
type SubscriptionCreateParams struct {
	// URL receives the webhooks. It must be http or https, with no credentials, and
	// may not point at a private, loopback, link-local or metadata address unless
	// the store's guard allows it. Required.
	URL string

	// EventTypes to deliver. Defaults to ["*"].
	EventTypes []string

	// AgentID, if set, limits the subscription to that agent's events.
	AgentID string

	// OrganizationID, if set, limits the subscription to that organization's events.
	OrganizationID string

	Description string

	// Headers are extra request headers sent with every delivery, such as the
	// receiver's credentials. Their values are stored encrypted (which needs the
	// store's keyring) and never shown again; reads list only their names.
	Headers map[string]string

	// RetrySchedule overrides the daemon's default schedule.
	RetrySchedule RetrySchedule

	// Secret signs deliveries. Nil generates one.
	Secret signing.Secret

	// RateLimit caps deliveries per second across every daemon; 0 is no limit.
	RateLimit int

	// MaxInFlight caps deliveries in flight at once across every daemon (1 to
	// 10,000); 0 leaves each daemon's default cap.
	MaxInFlight int

	// Ordering defaults to OrderingNone; OnDead to OnDeadBlock.
	Ordering Ordering
	OnDead   OnDead

	// AgentWebhook makes this the agent's webhook configuration; AgentID is then
	// required and the agent may have no other.
	AgentWebhook bool
}

// SubscriptionCreateResult is a new subscription and its signing secret. The secret
// is never shown again.
type SubscriptionCreateResult struct {
	*Subscription
	Secret signing.Secret `json:"-"`
}

// MarshalJSON includes the secret as whsec_….
func (r *SubscriptionCreateResult) MarshalJSON() ([]byte, error) {
	type plain Subscription
	return json.Marshal(&struct {
		*plain
		Secret string `json:"secret"`
	}{(*plain)(r.Subscription), r.Secret.String()})
}

func (s *Store) validateSubscription(ctx context.Context, params *SubscriptionCreateParams) error {
	return s.validateSubscriptionFields(ctx, params, true)
}

// validateSubscriptionFields checks a subscription; checkURL false skips the SSRF
// check of a URL that is not changing (it was checked when set, perhaps with an
// allow-list this process does not have).
func (s *Store) validateSubscriptionFields(ctx context.Context, params *SubscriptionCreateParams, checkURL bool) error {
	if params.URL == "" {
		return invalid("url", "required")
	}
	if checkURL {
		if _, err := s.guard.ValidateURL(ctx, params.URL); err != nil {
			return &ValidationError{Field: "url", Message: err.Error()}
		}
	}
	if len(params.URL) > 2048 {
		return invalid("url", "longer than 2048 characters")
	}
	for _, pattern := range params.EventTypes {
		if err := ValidateEventTypePattern(pattern); err != nil {
			return &ValidationError{Field: "event_types", Message: err.Error()}
		}
	}
	if len(params.EventTypes) > 100 {
		return invalid("event_types", "at most 100 patterns")
	}
	if err := checkText("description", params.Description, 1024, "subscriptions_description_length"); err != nil {
		return err
	}
	if err := checkID("agent_id", params.AgentID, "subscriptions_agent_id_length"); err != nil {
		return err
	}
	if err := checkID("organization_id", params.OrganizationID, "subscriptions_organization_id_length"); err != nil {
		return err
	}
	if err := ValidateHeaders(params.Headers); err != nil {
		return &ValidationError{Field: "headers", Message: err.Error()}
	}
	if err := params.RetrySchedule.Validate(); err != nil {
		return &ValidationError{Field: "retry_schedule", Message: err.Error()}
	}
	if params.RateLimit < 0 || params.RateLimit > 100_000 {
		return invalid("rate_limit", "deliveries per second, 1 to 100000 (0 for none)")
	}
	if params.MaxInFlight < 0 || params.MaxInFlight > MaxInFlightMax {
		return invalid("max_in_flight", "deliveries in flight at once, 1 to %d (0 for the daemon's default)", MaxInFlightMax)
	}
	if err := params.Ordering.validate(); err != nil {
		return err
	}
	if err := params.OnDead.validate(); err != nil {
		return err
	}
	if params.AgentWebhook && params.AgentID == "" {
		return invalid("agent_id", "required for an agent's webhook")
	}
	if params.Secret != nil && (len(params.Secret) < signing.SecretMinBytes || len(params.Secret) > signing.SecretMaxBytes) {
		return invalid("secret", "must be %d to %d bytes", signing.SecretMinBytes, signing.SecretMaxBytes)
	}
	return nil
}

// SubscriptionCreate validates params and creates a subscription with its secret.
func (s *Store) SubscriptionCreate(ctx context.Context, params *SubscriptionCreateParams) (*SubscriptionCreateResult, error) {
	var result *SubscriptionCreateResult
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		result, err = s.SubscriptionCreateTx(ctx, tx, params)
		return err
	})
	return result, err
}

// SubscriptionCreateTx creates a subscription inside the caller's transaction.
func (s *Store) SubscriptionCreateTx(ctx context.Context, tx Executor, params *SubscriptionCreateParams) (*SubscriptionCreateResult, error) {
	if err := s.validateSubscription(ctx, params); err != nil {
		return nil, err
	}
	if s.keyring == nil {
		return nil, ErrNoEncryptionKey
	}
	secret := params.Secret
	if secret == nil {
		var err error
		if secret, err = signing.GenerateSecret(); err != nil {
			return nil, err
		}
	}
	eventTypes := params.EventTypes
	if len(eventTypes) == 0 {
		eventTypes = []string{"*"}
	}
	exec := s.on(tx)
	row, err := s.queries.SubscriptionInsert(ctx, exec, &dbsqlc.SubscriptionInsertParams{
		OrganizationID:     nullable(params.OrganizationID),
		AgentID:            nullable(params.AgentID),
		Url:                params.URL,
		EventTypes:         eventTypes,
		Description:        params.Description,
		RetryScheduleMs:    params.RetrySchedule.millis(),
		AgentWebhook:       params.AgentWebhook,
		RateLimitPerSecond: rateLimitParam(params.RateLimit),
		MaxInFlight:        rateLimitParam(params.MaxInFlight),
		Ordering:           string(params.Ordering.orDefault()),
		OnDead:             string(params.OnDead.orDefault()),
	})
	if err != nil {
		if isUniqueViolation(err, "subscriptions_agent_webhook") {
			return nil, invalid("agent_id", "agent %s already has a webhook", params.AgentID)
		}
		return nil, translateError("create subscription", err)
	}
	if err := s.secretInsert(ctx, exec, row.ID, secret, nil); err != nil {
		return nil, err
	}
	if len(params.Headers) > 0 {
		if err := s.headersSetTx(ctx, exec, row.ID, params.Headers); err != nil {
			return nil, err
		}
		row.HeaderNames = headerNames(params.Headers)
	}
	sub, err := subscriptionFromRow(row)
	if err != nil {
		return nil, err
	}
	return &SubscriptionCreateResult{Subscription: sub, Secret: secret}, nil
}

func (s *Store) secretInsert(ctx context.Context, exec dbsqlc.DBTX, subscriptionID string, secret signing.Secret, expiresAt *time.Time) error {
	keyID, sealed, err := s.keyring.Seal(secret, []byte(subscriptionID))
	if err != nil {
		return err
	}
	err = s.queries.SubscriptionSecretInsert(ctx, exec, &dbsqlc.SubscriptionSecretInsertParams{
		SubscriptionID: subscriptionID,
		KeyID:          keyID,
		Ciphertext:     sealed,
		ExpiresAt:      expiresAt,
	})
	return translateError("store secret", err)
}

// SubscriptionGet returns a subscription, or ErrNotFound.
func (s *Store) SubscriptionGet(ctx context.Context, id string) (*Subscription, error) {
	row, err := s.queries.SubscriptionGet(ctx, s.on(s.db), id)
	if err != nil {
		return nil, translateError("get subscription", err)
	}
	return subscriptionFromRow(row)
}

// SubscriptionListParams filter SubscriptionList. Zero values do not filter.
type SubscriptionListParams struct {
	AgentID        string
	OrganizationID string
	Enabled        *bool

	// After continues a listing after this subscription id.
	After string

	// Limit caps the result. Defaults to 100; at most 1,000.
	Limit int
}

// SubscriptionList lists subscriptions in id order (which is creation order).
func (s *Store) SubscriptionList(ctx context.Context, params *SubscriptionListParams) ([]*Subscription, error) {
	if params == nil {
		params = &SubscriptionListParams{}
	}
	rows, err := s.queries.SubscriptionList(ctx, s.on(s.db), &dbsqlc.SubscriptionListParams{
		AgentID:        nullable(params.AgentID),
		OrganizationID: nullable(params.OrganizationID),
		Enabled:        params.Enabled,
		After:          params.After,
		Max:            int32(listLimit(params.Limit)), //nolint:gosec // bounded by listLimit
	})
	if err != nil {
		return nil, translateError("list subscriptions", err)
	}
	subs := make([]*Subscription, 0, len(rows))
	for _, row := range rows {
		sub, err := subscriptionFromRow(row)
		if err != nil {
			return nil, err
		}
		subs = append(subs, sub)
	}
	return subs, nil
}

// SubscriptionDelete deletes a subscription and its secrets, or returns
// ErrNotFound. Its deliveries end cancelled: those due when they next run, those
// waiting in an ordered line at once.
func (s *Store) SubscriptionDelete(ctx context.Context, id string) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		exec := s.on(tx)
		n, err := s.queries.SubscriptionDelete(ctx, exec, id)
		if err != nil {
			return translateError("delete subscription", err)
		}
		if n == 0 {
			return ErrNotFound
		}
		_, err = s.queries.OrderedCancelWaiting(ctx, exec, id)
		return translateError("cancel waiting deliveries", err)
	})
}

// SubscriptionDisable disables an enabled subscription and records why. It reports
// whether this call disabled it (false if it was already disabled or is gone).
func (s *Store) SubscriptionDisable(ctx context.Context, id, reason string) (bool, error) {
	n, err := s.queries.SubscriptionDisable(ctx, s.on(s.db), &dbsqlc.SubscriptionDisableParams{ID: id, Reason: &reason})
	if err != nil {
		return false, translateError("disable subscription", err)
	}
	return n > 0, nil
}

func listLimit(limit int) int {
	switch {
	case limit <= 0:
		return 100
	case limit > 1000:
		return 1000
	}
	return limit
}

// rateLimitParam stores a positive limit; 0 (none) is NULL.
func rateLimitParam(limit int) *int32 {
	if limit <= 0 {
		return nil
	}
	v := int32(limit) //nolint:gosec // validated to at most 100,000
	return &v
}

func deref32(v *int32) int32 {
	if v == nil {
		return 0
	}
	return *v
}
