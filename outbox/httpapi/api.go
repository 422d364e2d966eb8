package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/signing"
)

// Operations are what the API asks of the job system. httpapi does not import
// jobs; cmd/outboxd passes jobs.Operations, which satisfies this.
type Operations interface {
	DeliveryRetry(ctx context.Context, id int64) (*outbox.Delivery, error)
	SubscriptionTest(ctx context.Context, subscriptionID string) (*outbox.Attempt, error)
	RecoveryStart(ctx context.Context, subscriptionID string, since, until time.Time) (*outbox.Recovery, error)
	RecoveryGet(ctx context.Context, id int64) (*outbox.Recovery, error)
}

// route is one endpoint of the /v1 API. The table below is what the mux serves and
// what the OpenAPI document is checked against.
type route struct {
	method, path string
	handle       func(a *api, w http.ResponseWriter, r *http.Request)
}

var routes = []route{
	{"GET", "/v1/subscriptions", (*api).subscriptionList},
	{"POST", "/v1/subscriptions", (*api).subscriptionCreate},
	{"GET", "/v1/subscriptions/{id}", (*api).subscriptionGet},
	{"PATCH", "/v1/subscriptions/{id}", (*api).subscriptionUpdate},
	{"DELETE", "/v1/subscriptions/{id}", (*api).subscriptionDelete},
	{"POST", "/v1/subscriptions/{id}/enable", (*api).subscriptionEnable},
	{"POST", "/v1/subscriptions/{id}/disable", (*api).subscriptionDisable},
	{"POST", "/v1/subscriptions/{id}/test", (*api).subscriptionTest},
	{"POST", "/v1/subscriptions/{id}/secret/rotate", (*api).subscriptionSecretRotate},
	{"POST", "/v1/subscriptions/{id}/recover", (*api).subscriptionRecover},
	{"GET", "/v1/recoveries/{id}", (*api).recoveryGet},
	{"GET", "/v1/agents/{agent_id}/webhook", (*api).agentWebhookGet},
	{"PUT", "/v1/agents/{agent_id}/webhook", (*api).agentWebhookPut},
	{"DELETE", "/v1/agents/{agent_id}/webhook", (*api).agentWebhookDelete},
	{"GET", "/v1/deliveries", (*api).deliveryList},
	{"GET", "/v1/deliveries/{id}", (*api).deliveryGet},
	{"POST", "/v1/deliveries/{id}/retry", (*api).deliveryRetry},
	{"GET", "/v1/events", (*api).eventList},
	{"POST", "/v1/events", (*api).eventPublish},
	{"GET", "/v1/events/{id}", (*api).eventGet},
	{"POST", "/v1/portal/sessions", (*api).portalSessionCreate},
	{"GET", "/v1/portal/sessions", (*api).portalSessionList},
	{"GET", "/v1/portal/sessions/{id}", (*api).portalSessionGet},
	{"DELETE", "/v1/portal/sessions/{id}", (*api).portalSessionRevoke},
	{"GET", "/v1/subscriptions/{id}/stats", (*api).subscriptionStats},
	{"GET", "/v1/event-types", (*api).eventTypes},
	{"GET", "/v1/system", (*api).systemGet},
}

type api struct {
	store  *outbox.Store
	ops    Operations
	logger *slog.Logger
	public string // Config.PublicURL
	letta  func(ctx context.Context) (*LettaStatus, error)
}

func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	writeError(w, r, a.logger, err)
}

// page is a list response.
type page[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

// listLimitDefault and listLimitMax bound ?limit=.
const (
	listLimitDefault = 50
	listLimitMax     = 500
)

// listQuery reads limit and cursor. On failure it has answered and returns false.
func listQuery(w http.ResponseWriter, r *http.Request) (limit int, cursor string, ok bool) {
	limit = listLimitDefault
	if raw := r.URL.Query().Get("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > listLimitMax {
			writeProblem(w, http.StatusUnprocessableEntity, "limit must be 1 to 500", FieldProblem{Field: "limit", Message: "must be an integer from 1 to 500"})
			return 0, "", false
		}
		limit = n
	}
	if raw := r.URL.Query().Get("cursor"); raw != "" {
		decoded, err := base64.RawURLEncoding.DecodeString(raw)
		if err != nil || len(decoded) == 0 {
			writeProblem(w, http.StatusUnprocessableEntity, "cursor is not one this API returned", FieldProblem{Field: "cursor", Message: "use next_cursor from the previous page"})
			return 0, "", false
		}
		cursor = string(decoded)
	}
	return limit, cursor, true
}

// pageOf cuts items (fetched with limit+1) to limit and makes the cursor from the
// last item kept.
func pageOf[T any](items []T, limit int, key func(T) string) page[T] {
	p := page[T]{Data: items}
	if p.Data == nil {
		p.Data = []T{}
	}
	if len(items) > limit {
		p.Data = items[:limit]
		next := base64.RawURLEncoding.EncodeToString([]byte(key(items[limit-1])))
		p.NextCursor = &next
	}
	return p
}

// int64Cursor parses a numeric cursor; on failure it has answered.
func int64Cursor(w http.ResponseWriter, cursor string) (int64, bool) {
	if cursor == "" {
		return 0, true
	}
	n, err := strconv.ParseInt(cursor, 10, 64)
	if err != nil || n <= 0 {
		writeProblem(w, http.StatusUnprocessableEntity, "cursor is not one this API returned", FieldProblem{Field: "cursor", Message: "use next_cursor from the previous page"})
		return 0, false
	}
	return n, true
}

// pathID parses a numeric path id; on failure it has answered 404.
func pathID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		writeProblem(w, http.StatusNotFound, "no such resource")
		return 0, false
	}
	return id, true
}

// timeQuery parses an RFC 3339 query parameter; on failure it has answered.
func timeQuery(w http.ResponseWriter, r *http.Request, name string) (*time.Time, bool) {
	raw := r.URL.Query().Get(name)
	if raw == "" {
		return nil, true
	}
	t, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil {
		writeProblem(w, http.StatusUnprocessableEntity, name+" must be an RFC 3339 time", FieldProblem{Field: name, Message: "an RFC 3339 time like 2026-01-02T15:04:05Z"})
		return nil, false
	}
	return &t, true
}

// --- subscriptions ---

type subscriptionCreateRequest struct {
	URL            string               `json:"url"`
	EventTypes     []string             `json:"event_types"`
	AgentID        string               `json:"agent_id"`
	OrganizationID string               `json:"organization_id"`
	Description    string               `json:"description"`
	Headers        map[string]string    `json:"headers"`
	RetrySchedule  outbox.RetrySchedule `json:"retry_schedule"`
	RateLimit      int                  `json:"rate_limit"`
	MaxInFlight    int                  `json:"max_in_flight"`
	Ordering       outbox.Ordering      `json:"ordering"`
	OnDead         outbox.OnDead        `json:"on_dead"`
	Secret         string               `json:"secret"`
}

// organizationFor decides the organization of something an organization token
// creates: its own, whatever the body says (a different one is refused).
func organizationFor(p principal, requested string) (string, error) {
	if p.admin {
		return requested, nil
	}
	if requested != "" && requested != p.organizationID {
		return "", &outbox.ValidationError{Field: "organization_id", Message: "must be your token's organization (or left out)"}
	}
	return p.organizationID, nil
}

func parseSecret(field, raw string) (signing.Secret, error) {
	if raw == "" {
		return nil, nil
	}
	secret, err := signing.ParseSecret(raw)
	if err != nil {
		return nil, &outbox.ValidationError{Field: field, Message: err.Error()}
	}
	return secret, nil
}

func (a *api) subscriptionCreate(w http.ResponseWriter, r *http.Request) {
	var req subscriptionCreateRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	org, err := organizationFor(principalFrom(r.Context()), req.OrganizationID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	secret, err := parseSecret("secret", req.Secret)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	result, err := a.store.SubscriptionCreate(r.Context(), &outbox.SubscriptionCreateParams{
		URL: req.URL, EventTypes: req.EventTypes, AgentID: req.AgentID, OrganizationID: org,
		Description: req.Description, Headers: req.Headers, RetrySchedule: req.RetrySchedule, Secret: secret,
		RateLimit: req.RateLimit, MaxInFlight: req.MaxInFlight, Ordering: req.Ordering, OnDead: req.OnDead,
	})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/subscriptions/"+result.ID)
	writeJSON(w, a.logger, http.StatusCreated, result)
}

func (a *api) subscriptionList(w http.ResponseWriter, r *http.Request) {
	limit, cursor, ok := listQuery(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	params := &outbox.SubscriptionListParams{AgentID: q.Get("agent_id"), OrganizationID: q.Get("organization_id"), After: cursor, Limit: limit + 1}
	if !scopeSubscriptionList(principalFrom(r.Context()), params) {
		writeJSON(w, a.logger, http.StatusOK, page[*outbox.Subscription]{Data: []*outbox.Subscription{}})
		return
	}
	if raw := q.Get("enabled"); raw != "" {
		enabled, err := strconv.ParseBool(raw)
		if err != nil {
			writeProblem(w, http.StatusUnprocessableEntity, "enabled must be true or false", FieldProblem{Field: "enabled", Message: "true or false"})
			return
		}
		params.Enabled = &enabled
	}
	subs, err := a.store.SubscriptionList(r.Context(), params)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, a.logger, http.StatusOK, pageOf(subs, limit, func(s *outbox.Subscription) string { return s.ID }))
}

// subscription loads the path's subscription if the principal may see it.
func (a *api) subscription(w http.ResponseWriter, r *http.Request) (*outbox.Subscription, bool) {
	sub, err := a.store.SubscriptionGet(r.Context(), r.PathValue("id"))
	return a.visible(w, r, sub, err)
}

// visible passes on a loaded subscription the principal may see, and answers
// 404 (for another organization's too) or the error otherwise.
func (a *api) visible(w http.ResponseWriter, r *http.Request, sub *outbox.Subscription, err error) (*outbox.Subscription, bool) {
	if err == nil && !principalFrom(r.Context()).seesSubscription(sub) {
		err = outbox.ErrNotFound
	}
	if err != nil {
		a.fail(w, r, err)
		return nil, false
	}
	return sub, true
}

// seesSubscription reports whether the principal may see what belongs to a
// subscription (its deliveries, its recoveries); a deleted one only admins see.
func (a *api) seesSubscription(ctx context.Context, id string) bool {
	p := principalFrom(ctx)
	if p.admin {
		return true
	}
	sub, err := a.store.SubscriptionGet(ctx, id)
	return err == nil && p.seesSubscription(sub)
}

// loadSubscription returns a subscription the principal may see, or
// outbox.ErrNotFound (for another organization's too): the API's handlers and
// the portal's pages both load through here.
func (a *api) loadSubscription(ctx context.Context, id string) (*outbox.Subscription, error) {
	sub, err := a.store.SubscriptionGet(ctx, id)
	if err == nil && !principalFrom(ctx).seesSubscription(sub) {
		err = outbox.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return sub, nil
}

// loadDelivery returns a delivery the principal may see, or outbox.ErrNotFound.
func (a *api) loadDelivery(ctx context.Context, id int64) (*outbox.Delivery, error) {
	delivery, err := a.store.DeliveryGet(ctx, id)
	if err == nil && !a.seesSubscription(ctx, delivery.SubscriptionID) {
		err = outbox.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return delivery, nil
}

// scopeSubscriptionList narrows a listing to what the principal may see; it
// reports false when the listing asks for another organization's (which is
// then empty).
func scopeSubscriptionList(p principal, params *outbox.SubscriptionListParams) bool {
	if p.admin {
		return true
	}
	if params.OrganizationID != "" && params.OrganizationID != p.organizationID {
		return false
	}
	params.OrganizationID = p.organizationID
	if p.agentID != "" {
		if params.AgentID != "" && params.AgentID != p.agentID {
			return false
		}
		params.AgentID = p.agentID
	}
	return true
}

// scopeDeliveryList narrows a delivery listing to what the principal may see.
func scopeDeliveryList(p principal, params *outbox.DeliveryListParams) {
	if p.admin {
		return
	}
	params.OrganizationID = p.organizationID
	if p.agentID != "" {
		params.AgentID = p.agentID
	}
}

// subscriptionStatsResponse is GET /v1/subscriptions/{id}/stats: the portal's
// figures and chart of an endpoint.
type subscriptionStatsResponse struct {
	*outbox.SubscriptionStats
	Hourly []outbox.HourlyOutcomes `json:"hourly"`
}

func (a *api) subscriptionStats(w http.ResponseWriter, r *http.Request) {
	sub, ok := a.subscription(w, r)
	if !ok {
		return
	}
	stats, err := a.store.SubscriptionStatsList(r.Context(), []string{sub.ID}, outbox.StatsSample)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	hourly, err := a.store.SubscriptionHourly(r.Context(), sub.ID, time.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, a.logger, http.StatusOK, &subscriptionStatsResponse{SubscriptionStats: stats[0], Hourly: hourly})
}

// eventTypeResponse is one entry of GET /v1/event-types.
type eventTypeResponse struct {
	outbox.EventTypeInfo
	LastSeen *time.Time `json:"last_seen"`
}

func (a *api) eventTypes(w http.ResponseWriter, r *http.Request) {
	data, err := a.catalog(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := struct {
		Data   []eventTypeResponse `json:"data"`
		Others []eventTypeResponse `json:"others"`
	}{Data: []eventTypeResponse{}, Others: []eventTypeResponse{}}
	for _, e := range data.Types {
		out.Data = append(out.Data, eventTypeResponse{EventTypeInfo: e.EventTypeInfo, LastSeen: e.LastSeen})
	}
	for _, e := range data.Others {
		out.Others = append(out.Others, eventTypeResponse{EventTypeInfo: e.EventTypeInfo, LastSeen: e.LastSeen})
	}
	writeJSON(w, a.logger, http.StatusOK, out)
}

func (a *api) subscriptionGet(w http.ResponseWriter, r *http.Request) {
	if sub, ok := a.subscription(w, r); ok {
		writeJSON(w, a.logger, http.StatusOK, sub)
	}
}

type subscriptionPatchRequest struct {
	URL           *string           `json:"url"`
	EventTypes    []string          `json:"event_types"`
	Description   *string           `json:"description"`
	Headers       map[string]string `json:"headers"`
	RetrySchedule json.RawMessage   `json:"retry_schedule"`
	Enabled       *bool             `json:"enabled"`
	RateLimit     *int              `json:"rate_limit"`
	MaxInFlight   *int              `json:"max_in_flight"`
	Ordering      *outbox.Ordering  `json:"ordering"`
	OnDead        *outbox.OnDead    `json:"on_dead"`
}

func (a *api) subscriptionUpdate(w http.ResponseWriter, r *http.Request) {
	var req subscriptionPatchRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	sub, ok := a.subscription(w, r)
	if !ok {
		return
	}
	params := &outbox.SubscriptionUpdateParams{URL: req.URL, EventTypes: req.EventTypes, Description: req.Description, Headers: req.Headers, Enabled: req.Enabled, RateLimit: req.RateLimit,
		MaxInFlight: req.MaxInFlight, Ordering: req.Ordering, OnDead: req.OnDead}
	if req.RetrySchedule != nil {
		params.SetRetrySchedule = true
		if string(req.RetrySchedule) != "null" {
			if err := json.Unmarshal(req.RetrySchedule, &params.RetrySchedule); err != nil {
				a.fail(w, r, err) // a *outbox.ValidationError naming the entry
				return
			}
		}
	}
	updated, err := a.store.SubscriptionUpdate(r.Context(), sub.ID, params)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, a.logger, http.StatusOK, updated)
}

func (a *api) subscriptionDelete(w http.ResponseWriter, r *http.Request) {
	sub, ok := a.subscription(w, r)
	if !ok {
		return
	}
	if err := a.store.SubscriptionDelete(r.Context(), sub.ID); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) subscriptionEnable(w http.ResponseWriter, r *http.Request) {
	a.subscriptionSetEnabled(w, r, true)
}

func (a *api) subscriptionDisable(w http.ResponseWriter, r *http.Request) {
	a.subscriptionSetEnabled(w, r, false)
}

func (a *api) subscriptionSetEnabled(w http.ResponseWriter, r *http.Request, enabled bool) {
	sub, ok := a.subscription(w, r)
	if !ok {
		return
	}
	updated, err := a.store.SubscriptionUpdate(r.Context(), sub.ID, &outbox.SubscriptionUpdateParams{Enabled: &enabled})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, a.logger, http.StatusOK, updated)
}

// testResult is the outcome of POST /v1/subscriptions/{id}/test.
type testResult struct {
	Delivered  bool    `json:"delivered"`
	StatusCode int     `json:"status_code,omitempty"`
	DurationMS float64 `json:"duration_ms"`
	Response   string  `json:"response,omitempty"`
	ErrorClass string  `json:"error_class,omitempty"`
	Error      string  `json:"error,omitempty"`
}

func (a *api) subscriptionTest(w http.ResponseWriter, r *http.Request) {
	sub, ok := a.subscription(w, r)
	if !ok {
		return
	}
	attempt, err := a.ops.SubscriptionTest(r.Context(), sub.ID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, a.logger, http.StatusOK, &testResult{
		Delivered:  attempt.StatusCode >= 200 && attempt.StatusCode < 300,
		StatusCode: attempt.StatusCode, DurationMS: attempt.DurationMS, Response: attempt.Response,
		ErrorClass: attempt.ErrorClass, Error: attempt.Error,
	})
}

type secretRotateRequest struct {
	// Grace is how long the old secrets keep signing, as a Go duration ("24h").
	Grace string `json:"grace"`
}

func (a *api) subscriptionSecretRotate(w http.ResponseWriter, r *http.Request) {
	var req secretRotateRequest
	if r.ContentLength != 0 && !decodeJSON(w, r, &req) {
		return
	}
	var grace time.Duration
	if req.Grace != "" {
		var err error
		if grace, err = time.ParseDuration(req.Grace); err != nil || grace <= 0 || grace > 7*24*time.Hour {
			a.fail(w, r, &outbox.ValidationError{Field: "grace", Message: "a positive duration like 24h, at most 168h"})
			return
		}
	}
	sub, ok := a.subscription(w, r)
	if !ok {
		return
	}
	result, err := a.store.SubscriptionSecretRotate(r.Context(), sub.ID, grace)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, a.logger, http.StatusOK, result)
}

type recoverRequest struct {
	Since json.RawMessage `json:"since"`
	Until json.RawMessage `json:"until"`
}

// timeField reads an RFC 3339 time from a JSON body; nil when it is absent.
func timeField(name string, raw json.RawMessage) (*time.Time, error) {
	if raw == nil || string(raw) == "null" {
		return nil, nil
	}
	var t time.Time
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, &outbox.ValidationError{Field: name, Message: "an RFC 3339 time like 2026-01-02T15:04:05Z"}
	}
	return &t, nil
}

func (a *api) subscriptionRecover(w http.ResponseWriter, r *http.Request) {
	var req recoverRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	since, err := timeField("since", req.Since)
	if err == nil && since == nil {
		err = &outbox.ValidationError{Field: "since", Message: "required: an RFC 3339 time"}
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	until := time.Now()
	if parsed, err := timeField("until", req.Until); err != nil {
		a.fail(w, r, err)
		return
	} else if parsed != nil {
		until = *parsed
	}
	sub, ok := a.subscription(w, r)
	if !ok {
		return
	}
	recovery, err := a.ops.RecoveryStart(r.Context(), sub.ID, *since, until)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/recoveries/"+strconv.FormatInt(recovery.ID, 10))
	writeJSON(w, a.logger, http.StatusAccepted, recovery)
}

func (a *api) recoveryGet(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	recovery, err := a.ops.RecoveryGet(r.Context(), id)
	if err == nil && !a.seesSubscription(r.Context(), recovery.SubscriptionID) {
		err = outbox.ErrNotFound
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, a.logger, http.StatusOK, recovery)
}

// --- agents' webhooks ---

// agentWebhook is the per-agent webhook configuration.
type agentWebhook struct {
	AgentID        string     `json:"agent_id"`
	SubscriptionID string     `json:"subscription_id"`
	OrganizationID string     `json:"organization_id,omitempty"`
	WebhookURL     string     `json:"webhook_url"`
	WebhookEvents  []string   `json:"webhook_events"`
	WebhookEnabled bool       `json:"webhook_enabled"`
	WebhookSecret  string     `json:"webhook_secret,omitempty"` // only when generated, once
	DisabledReason string     `json:"disabled_reason,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	DisabledAt     *time.Time `json:"disabled_at,omitempty"`
}

func agentWebhookFrom(sub *outbox.Subscription) *agentWebhook {
	return &agentWebhook{
		AgentID: sub.AgentID, SubscriptionID: sub.ID, OrganizationID: sub.OrganizationID,
		WebhookURL: sub.URL, WebhookEvents: sub.EventTypes, WebhookEnabled: sub.Enabled,
		DisabledReason: sub.DisabledReason, DisabledAt: sub.DisabledAt, CreatedAt: sub.CreatedAt, UpdatedAt: sub.UpdatedAt,
	}
}

// agentWebhook loads the path agent's webhook if the principal may see it.
func (a *api) agentWebhook(w http.ResponseWriter, r *http.Request) (*outbox.Subscription, bool) {
	sub, err := a.store.AgentWebhookGet(r.Context(), r.PathValue("agent_id"))
	return a.visible(w, r, sub, err)
}

func (a *api) agentWebhookGet(w http.ResponseWriter, r *http.Request) {
	if sub, ok := a.agentWebhook(w, r); ok {
		writeJSON(w, a.logger, http.StatusOK, agentWebhookFrom(sub))
	}
}

type agentWebhookPutRequest struct {
	WebhookURL     string   `json:"webhook_url"`
	WebhookSecret  string   `json:"webhook_secret"`
	WebhookEvents  []string `json:"webhook_events"`
	WebhookEnabled *bool    `json:"webhook_enabled"`
	OrganizationID string   `json:"organization_id"`
}

func (a *api) agentWebhookPut(w http.ResponseWriter, r *http.Request) {
	var req agentWebhookPutRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	p := principalFrom(r.Context())
	agentID := r.PathValue("agent_id")
	existing, err := a.store.AgentWebhookGet(r.Context(), agentID)
	switch {
	case err == nil && !p.sees(existing.OrganizationID):
		// Another organization's agent: do not reveal it, do not take it over.
		a.fail(w, r, outbox.ErrNotFound)
		return
	case err != nil && !errors.Is(err, outbox.ErrNotFound):
		a.fail(w, r, err)
		return
	}
	if req.WebhookURL == "" {
		a.fail(w, r, &outbox.ValidationError{Field: "webhook_url", Message: "required"})
		return
	}
	org, err := organizationFor(p, req.OrganizationID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	secret, err := parseSecret("webhook_secret", req.WebhookSecret)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	result, err := a.store.AgentWebhookPut(r.Context(), &outbox.AgentWebhookPutParams{
		AgentID: agentID, OrganizationID: org, URL: req.WebhookURL, EventTypes: req.WebhookEvents,
		Enabled: req.WebhookEnabled, Secret: secret,
	})
	if err != nil {
		var validation *outbox.ValidationError
		if errors.As(err, &validation) {
			if renamed, ok := agentWebhookFields[validation.Field]; ok {
				validation.Field = renamed
			}
		}
		a.fail(w, r, err)
		return
	}
	body := agentWebhookFrom(result.Subscription)
	status := http.StatusOK
	if result.Created {
		status = http.StatusCreated
	}
	if result.Secret != nil {
		body.WebhookSecret = result.Secret.String()
	}
	writeJSON(w, a.logger, status, body)
}

// agentWebhookFields names subscription fields as the agent webhook API calls them.
var agentWebhookFields = map[string]string{"url": "webhook_url", "event_types": "webhook_events", "secret": "webhook_secret"}

func (a *api) agentWebhookDelete(w http.ResponseWriter, r *http.Request) {
	sub, ok := a.agentWebhook(w, r)
	if !ok {
		return
	}
	if err := a.store.SubscriptionDelete(r.Context(), sub.ID); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// --- deliveries ---

func (a *api) deliveryList(w http.ResponseWriter, r *http.Request) {
	limit, cursor, ok := listQuery(w, r)
	if !ok {
		return
	}
	before, ok := int64Cursor(w, cursor)
	if !ok {
		return
	}
	since, ok := timeQuery(w, r, "since")
	if !ok {
		return
	}
	until, ok := timeQuery(w, r, "until")
	if !ok {
		return
	}
	q := r.URL.Query()
	params := &outbox.DeliveryListParams{
		EventID: q.Get("event_id"), SubscriptionID: q.Get("subscription_id"), AgentID: q.Get("agent_id"),
		EventType: q.Get("event_type"), Since: since, Until: until, Before: before, Limit: limit + 1,
	}
	if raw := q.Get("state"); raw != "" {
		state, err := outbox.ParseDeliveryState(raw)
		if err != nil {
			writeProblem(w, http.StatusUnprocessableEntity, err.Error(), FieldProblem{Field: "state", Message: err.Error()})
			return
		}
		params.State = state
	}
	scopeDeliveryList(principalFrom(r.Context()), params)
	deliveries, err := a.store.DeliveryList(r.Context(), params)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, a.logger, http.StatusOK, pageOf(deliveries, limit, func(d *outbox.Delivery) string { return strconv.FormatInt(d.ID, 10) }))
}

// delivery loads the path's delivery if the principal may see it.
func (a *api) delivery(w http.ResponseWriter, r *http.Request) (*outbox.Delivery, bool) {
	id, ok := pathID(w, r)
	if !ok {
		return nil, false
	}
	delivery, err := a.loadDelivery(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return nil, false
	}
	return delivery, true
}

func (a *api) deliveryGet(w http.ResponseWriter, r *http.Request) {
	if delivery, ok := a.delivery(w, r); ok {
		writeJSON(w, a.logger, http.StatusOK, delivery)
	}
}

func (a *api) deliveryRetry(w http.ResponseWriter, r *http.Request) {
	delivery, ok := a.delivery(w, r)
	if !ok {
		return
	}
	retried, err := a.ops.DeliveryRetry(r.Context(), delivery.ID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, a.logger, http.StatusAccepted, retried)
}

// --- events ---

func (a *api) eventList(w http.ResponseWriter, r *http.Request) {
	limit, cursor, ok := listQuery(w, r)
	if !ok {
		return
	}
	before, ok := int64Cursor(w, cursor)
	if !ok {
		return
	}
	q := r.URL.Query()
	params := &outbox.EventListParams{OrganizationID: q.Get("organization_id"), AgentID: q.Get("agent_id"), Type: q.Get("type"), Before: before, Limit: limit + 1}
	if p := principalFrom(r.Context()); !p.admin {
		if params.OrganizationID != "" && params.OrganizationID != p.organizationID {
			writeJSON(w, a.logger, http.StatusOK, page[*outbox.Event]{Data: []*outbox.Event{}})
			return
		}
		params.OrganizationID = p.organizationID
	}
	events, err := a.store.EventList(r.Context(), params)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, a.logger, http.StatusOK, pageOf(events, limit, func(e *outbox.Event) string { return strconv.FormatInt(e.Seq, 10) }))
}

// eventWithDeliveries is GET /v1/events/{id}.
type eventWithDeliveries struct {
	*outbox.Event
	Deliveries []*outbox.Delivery `json:"deliveries"`
}

func (a *api) eventGet(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	event, err := a.store.EventGet(r.Context(), r.PathValue("id"))
	if err == nil && !p.sees(event.OrganizationID) {
		err = outbox.ErrNotFound
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	params := &outbox.DeliveryListParams{EventID: event.ID, Limit: 1000}
	if !p.admin {
		params.OrganizationID = p.organizationID
	}
	deliveries, err := a.store.DeliveryList(r.Context(), params)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, a.logger, http.StatusOK, &eventWithDeliveries{Event: event, Deliveries: deliveries})
}

type eventPublishRequest struct {
	Type           string          `json:"type"`
	Payload        json.RawMessage `json:"payload"`
	AgentID        string          `json:"agent_id"`
	OrganizationID string          `json:"organization_id"`
	IdempotencyKey string          `json:"idempotency_key"`
}

func (a *api) eventPublish(w http.ResponseWriter, r *http.Request) {
	var req eventPublishRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	org, err := organizationFor(principalFrom(r.Context()), req.OrganizationID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if req.Type == "" {
		a.fail(w, r, &outbox.ValidationError{Field: "type", Message: "required, like agent.step.completed"})
		return
	}
	event, err := a.store.Publish(r.Context(), &outbox.PublishParams{
		Type: req.Type, Payload: req.Payload, AgentID: req.AgentID, OrganizationID: org, IdempotencyKey: req.IdempotencyKey,
	})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/events/"+event.ID)
	writeJSON(w, a.logger, http.StatusCreated, event)
}
