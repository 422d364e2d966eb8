package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/signing"
)

// This file holds the pages that the portal and the console share: endpoints
// (subscriptions), deliveries, recoveries and the event catalog. Each loads
// and acts through the same functions as the /v1 API.

// pageSize is how many rows a listing page shows.
const pageSize = 50

// endpointRow is one line of the endpoint list.
type endpointRow struct {
	Sub   *outbox.Subscription
	Stats *outbox.SubscriptionStats
}

type endpointListData struct {
	Rows []endpointRow
	Next string // the cursor of the next page, if any
}

func (web *webApp) endpointList(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	params := &outbox.SubscriptionListParams{After: r.URL.Query().Get("after"), Limit: pageSize + 1, OrganizationID: r.URL.Query().Get("organization_id")}
	var subs []*outbox.Subscription
	if scopeSubscriptionList(principalFrom(ctx), params) {
		var err error
		if subs, err = web.api.store.SubscriptionList(ctx, params); err != nil {
			web.fail(w, r, err)
			return
		}
	}
	data := &endpointListData{}
	if len(subs) > pageSize {
		subs = subs[:pageSize]
		data.Next = subs[pageSize-1].ID
	}
	ids := make([]string, len(subs))
	for i, sub := range subs {
		ids[i] = sub.ID
	}
	stats, err := web.api.store.SubscriptionStatsList(ctx, ids, outbox.StatsSampleList)
	if err != nil {
		web.fail(w, r, err)
		return
	}
	for i, sub := range subs {
		data.Rows = append(data.Rows, endpointRow{Sub: sub, Stats: stats[i]})
	}
	web.render(w, r, http.StatusOK, "endpoints", "Endpoints", data)
}

// endpointForm is the create and edit form's fields, as typed.
type endpointForm struct {
	URL, Description, EventTypes, Headers, RateLimit, Ordering, AgentID, OrganizationID string
	ClearHeaders                                                                        bool
}

func endpointFormFrom(r *http.Request) *endpointForm {
	f := r.PostForm
	return &endpointForm{
		URL: strings.TrimSpace(f.Get("url")), Description: f.Get("description"), EventTypes: f.Get("event_types"),
		Headers: f.Get("headers"), RateLimit: strings.TrimSpace(f.Get("rate_limit")), Ordering: f.Get("ordering"),
		AgentID: strings.TrimSpace(f.Get("agent_id")), OrganizationID: strings.TrimSpace(f.Get("organization_id")),
		ClearHeaders: f.Get("clear_headers") == "on",
	}
}

// eventTypes splits the form's event types on commas, spaces and lines.
func (f *endpointForm) eventTypes() []string {
	return strings.FieldsFunc(f.EventTypes, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}

// headers parses "Name: value" lines; nil when there are none.
func (f *endpointForm) headers() (map[string]string, error) {
	var headers map[string]string
	for line := range strings.SplitSeq(f.Headers, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, &outbox.ValidationError{Field: "headers", Message: fmt.Sprintf("%q: write one header a line, as Name: value", line)}
		}
		if headers == nil {
			headers = map[string]string{}
		}
		headers[strings.TrimSpace(name)] = strings.TrimSpace(value)
	}
	return headers, nil
}

func (f *endpointForm) rateLimit() (int, error) {
	if f.RateLimit == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(f.RateLimit)
	if err != nil || n < 0 {
		return 0, &outbox.ValidationError{Field: "rate_limit", Message: "a whole number of deliveries per second (0: no limit)"}
	}
	return n, nil
}

type endpointEditData struct {
	Sub   *outbox.Subscription // nil when creating
	Form  *endpointForm
	Error string
}

func (web *webApp) endpointNew(w http.ResponseWriter, r *http.Request) {
	web.render(w, r, http.StatusOK, "endpoint_form", "New endpoint", &endpointEditData{Form: &endpointForm{Ordering: "none", EventTypes: "*"}})
}

// formError re-renders a form with what was wrong, or fails as usual for
// anything but bad input.
func (web *webApp) formError(w http.ResponseWriter, r *http.Request, err error, data *endpointEditData, title string) {
	var validation *outbox.ValidationError
	if !errors.As(err, &validation) {
		web.fail(w, r, err)
		return
	}
	data.Error = validation.Error()
	web.render(w, r, http.StatusUnprocessableEntity, "endpoint_form", title, data)
}

// secretData is the page that shows a secret, once.
type secretData struct {
	Sub               *outbox.Subscription
	Secret            string
	Created           bool
	PreviousExpiresAt *time.Time
}

func (web *webApp) endpointCreate(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	form := endpointFormFrom(r)
	data := &endpointEditData{Form: form}
	p := principalFrom(ctx)
	org, err := organizationFor(p, form.OrganizationID)
	agent := form.AgentID
	if p.agentID != "" {
		agent = p.agentID // a portal opened for an agent makes that agent's endpoints
	}
	var (
		headers map[string]string
		rate    int
	)
	if err == nil {
		headers, err = form.headers()
	}
	if err == nil {
		rate, err = form.rateLimit()
	}
	if err != nil {
		web.formError(w, r, err, data, "New endpoint")
		return
	}
	result, err := web.api.store.SubscriptionCreate(ctx, &outbox.SubscriptionCreateParams{
		URL: form.URL, EventTypes: form.eventTypes(), AgentID: agent, OrganizationID: org, Description: form.Description,
		Headers: headers, RateLimit: rate, Ordering: outbox.Ordering(form.Ordering),
	})
	if err != nil {
		web.formError(w, r, err, data, "New endpoint")
		return
	}
	web.render(w, r, http.StatusCreated, "secret", "Endpoint created", &secretData{Sub: result.Subscription, Secret: result.Secret.String(), Created: true})
}

// endpointData is the endpoint page's.
type endpointData struct {
	Sub        *outbox.Subscription
	Stats      *outbox.SubscriptionStats
	Chart      *chart
	Form       *endpointForm
	Test       *testResult
	Deliveries []*outbox.Delivery
	Since      string // the recovery form's default range
	Until      string
	Error      string
}

// endpoint loads the path's endpoint for the page, or has answered.
func (web *webApp) endpoint(w http.ResponseWriter, r *http.Request) (*outbox.Subscription, bool) {
	sub, err := web.api.loadSubscription(r.Context(), r.PathValue("id"))
	if err != nil {
		web.fail(w, r, err)
		return nil, false
	}
	return sub, true
}

func (web *webApp) endpointShow(w http.ResponseWriter, r *http.Request) {
	sub, ok := web.endpoint(w, r)
	if !ok {
		return
	}
	web.showEndpoint(w, r, http.StatusOK, sub, nil, "")
}

// showEndpoint renders an endpoint's page, with a test's result or an error
// when an action just ran.
func (web *webApp) showEndpoint(w http.ResponseWriter, r *http.Request, status int, sub *outbox.Subscription, test *testResult, problem string) {
	ctx := r.Context()
	stats, err := web.api.store.SubscriptionStatsList(ctx, []string{sub.ID}, outbox.StatsSample)
	if err != nil {
		web.fail(w, r, err)
		return
	}
	now := time.Now()
	hours, err := web.api.store.SubscriptionHourly(ctx, sub.ID, now)
	if err != nil {
		web.fail(w, r, err)
		return
	}
	deliveries, err := web.api.store.DeliveryList(ctx, &outbox.DeliveryListParams{SubscriptionID: sub.ID, Limit: 10})
	if err != nil {
		web.fail(w, r, err)
		return
	}
	rate := ""
	if sub.RateLimit > 0 {
		rate = strconv.Itoa(sub.RateLimit)
	}
	web.render(w, r, status, "endpoint", sub.URL, &endpointData{
		Sub: sub, Stats: stats[0], Chart: newChart(hours), Test: test, Deliveries: deliveries, Error: problem,
		Form: &endpointForm{
			URL: sub.URL, Description: sub.Description, EventTypes: strings.Join(sub.EventTypes, ", "),
			RateLimit: rate, Ordering: string(sub.Ordering),
		},
		Since: now.Add(-24 * time.Hour).UTC().Format(formTime), Until: now.UTC().Add(time.Minute).Format(formTime),
	})
}

func (web *webApp) endpointUpdate(w http.ResponseWriter, r *http.Request) {
	sub, ok := web.endpoint(w, r)
	if !ok {
		return
	}
	form := endpointFormFrom(r)
	params := &outbox.SubscriptionUpdateParams{URL: &form.URL, Description: &form.Description, EventTypes: form.eventTypes()}
	if params.EventTypes == nil {
		params.EventTypes = []string{} // refused with the store's message
	}
	ordering := outbox.Ordering(form.Ordering)
	params.Ordering = &ordering
	rate, err := form.rateLimit()
	if err == nil {
		params.RateLimit = &rate
		params.Headers, err = form.headers()
	}
	if err == nil && form.ClearHeaders {
		params.Headers = map[string]string{}
	}
	if err == nil {
		_, err = web.api.store.SubscriptionUpdate(r.Context(), sub.ID, params)
	}
	var validation *outbox.ValidationError
	if errors.As(err, &validation) {
		web.showEndpoint(w, r, http.StatusUnprocessableEntity, sub, nil, validation.Error())
		return
	}
	if err != nil {
		web.fail(w, r, err)
		return
	}
	http.Redirect(w, r, viewFrom(r.Context()).Base+"/endpoints/"+url.PathEscape(sub.ID), http.StatusSeeOther)
}

func (web *webApp) endpointEnable(w http.ResponseWriter, r *http.Request) { web.setEnabled(w, r, true) }
func (web *webApp) endpointDisable(w http.ResponseWriter, r *http.Request) {
	web.setEnabled(w, r, false)
}

func (web *webApp) setEnabled(w http.ResponseWriter, r *http.Request, enabled bool) {
	sub, ok := web.endpoint(w, r)
	if !ok {
		return
	}
	if _, err := web.api.store.SubscriptionUpdate(r.Context(), sub.ID, &outbox.SubscriptionUpdateParams{Enabled: &enabled}); err != nil {
		web.fail(w, r, err)
		return
	}
	http.Redirect(w, r, viewFrom(r.Context()).Base+"/endpoints/"+url.PathEscape(sub.ID), http.StatusSeeOther)
}

func (web *webApp) endpointRotate(w http.ResponseWriter, r *http.Request) {
	sub, ok := web.endpoint(w, r)
	if !ok {
		return
	}
	grace, err := time.ParseDuration(r.PostForm.Get("grace"))
	if err != nil || grace <= 0 || grace > 7*24*time.Hour {
		web.showEndpoint(w, r, http.StatusUnprocessableEntity, sub, nil, "grace: a positive duration like 24h, at most 168h")
		return
	}
	result, err := web.api.store.SubscriptionSecretRotate(r.Context(), sub.ID, grace)
	if err != nil {
		web.fail(w, r, err)
		return
	}
	web.render(w, r, http.StatusOK, "secret", "Secret rotated", &secretData{Sub: sub, Secret: result.Secret.String(), PreviousExpiresAt: &result.PreviousExpiresAt})
}

func (web *webApp) endpointTest(w http.ResponseWriter, r *http.Request) {
	sub, ok := web.endpoint(w, r)
	if !ok {
		return
	}
	attempt, err := web.api.ops.SubscriptionTest(r.Context(), sub.ID)
	if err != nil {
		web.fail(w, r, err)
		return
	}
	web.showEndpoint(w, r, http.StatusOK, sub, &testResult{
		Delivered:  attempt.StatusCode >= 200 && attempt.StatusCode < 300,
		StatusCode: attempt.StatusCode, DurationMS: attempt.DurationMS, Response: attempt.Response,
		ErrorClass: attempt.ErrorClass, Error: attempt.Error,
	}, "")
}

// formTime is the layout of <input type="datetime-local">, read as UTC.
const formTime = "2006-01-02T15:04"

func parseFormTime(field, raw string) (time.Time, error) {
	t, err := time.Parse(formTime, raw)
	if err != nil {
		if t, err = time.Parse(time.RFC3339, raw); err != nil {
			return time.Time{}, &outbox.ValidationError{Field: field, Message: "a time like 2026-01-02T15:04 (UTC)"}
		}
	}
	return t.UTC(), nil
}

func (web *webApp) endpointRecover(w http.ResponseWriter, r *http.Request) {
	sub, ok := web.endpoint(w, r)
	if !ok {
		return
	}
	since, err := parseFormTime("since", r.PostForm.Get("since"))
	var until time.Time
	if err == nil {
		until, err = parseFormTime("until", r.PostForm.Get("until"))
	}
	var recovery *outbox.Recovery
	if err == nil {
		recovery, err = web.api.ops.RecoveryStart(r.Context(), sub.ID, since, until)
	}
	var validation *outbox.ValidationError
	if errors.As(err, &validation) {
		web.showEndpoint(w, r, http.StatusUnprocessableEntity, sub, nil, validation.Error())
		return
	}
	if err != nil {
		web.fail(w, r, err)
		return
	}
	http.Redirect(w, r, viewFrom(r.Context()).Base+"/recoveries/"+strconv.FormatInt(recovery.ID, 10), http.StatusSeeOther)
}

type recoveryData struct {
	Recovery *outbox.Recovery
	Done     bool
}

func (web *webApp) recoveryShow(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		web.fail(w, r, outbox.ErrNotFound)
		return
	}
	recovery, err := web.api.ops.RecoveryGet(r.Context(), id)
	if err == nil && !web.api.seesSubscription(r.Context(), recovery.SubscriptionID) {
		err = outbox.ErrNotFound
	}
	if err != nil {
		web.fail(w, r, err)
		return
	}
	done := recovery.State == "completed" || recovery.State == "failed"
	if !done {
		// Progress without JavaScript: the page reloads itself until it ends.
		w.Header().Set("Refresh", "2")
	}
	web.render(w, r, http.StatusOK, "recovery", "Recovery", &recoveryData{Recovery: recovery, Done: done})
}

// deliveryFilter is the delivery log's filter, as typed.
type deliveryFilter struct {
	Endpoint, State, EventType, EventID, Since, Until string
}

type deliveryListData struct {
	Filter     deliveryFilter
	Endpoints  []*outbox.Subscription
	States     []outbox.DeliveryState
	Deliveries []*outbox.Delivery
	Next       string // the query of the next page, if any
	Error      string
}

func (web *webApp) deliveryList(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	filter := deliveryFilter{
		Endpoint: q.Get("endpoint"), State: q.Get("state"), EventType: strings.TrimSpace(q.Get("event_type")),
		EventID: strings.TrimSpace(q.Get("event_id")), Since: q.Get("since"), Until: q.Get("until"),
	}
	data := &deliveryListData{Filter: filter, States: outbox.DeliveryStates}
	subParams := &outbox.SubscriptionListParams{Limit: 200}
	if scopeSubscriptionList(principalFrom(ctx), subParams) {
		subs, err := web.api.store.SubscriptionList(ctx, subParams)
		if err != nil {
			web.fail(w, r, err)
			return
		}
		data.Endpoints = subs
	}
	params := &outbox.DeliveryListParams{SubscriptionID: filter.Endpoint, EventType: filter.EventType, EventID: filter.EventID, Limit: pageSize + 1}
	var problems []string
	if filter.State != "" {
		state, err := outbox.ParseDeliveryState(filter.State)
		if err != nil {
			problems = append(problems, "state: "+err.Error())
		}
		params.State = state
	}
	for _, bound := range []struct {
		field, raw string
		into       **time.Time
	}{{"since", filter.Since, &params.Since}, {"until", filter.Until, &params.Until}} {
		if bound.raw == "" {
			continue
		}
		t, err := parseFormTime(bound.field, bound.raw)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		*bound.into = &t
	}
	if raw := q.Get("before"); raw != "" {
		before, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || before <= 0 {
			problems = append(problems, "before: use the Older link")
		}
		params.Before = before
	}
	if len(problems) > 0 {
		data.Error = strings.Join(problems, "; ")
		web.render(w, r, http.StatusUnprocessableEntity, "deliveries", "Deliveries", data)
		return
	}
	scopeDeliveryList(principalFrom(ctx), params)
	deliveries, err := web.api.store.DeliveryList(ctx, params)
	if err != nil {
		web.fail(w, r, err)
		return
	}
	if len(deliveries) > pageSize {
		deliveries = deliveries[:pageSize]
		next := url.Values{}
		for k, v := range q {
			if k != "before" {
				next[k] = v
			}
		}
		next.Set("before", strconv.FormatInt(deliveries[pageSize-1].ID, 10))
		data.Next = next.Encode()
	}
	data.Deliveries = deliveries
	web.render(w, r, http.StatusOK, "deliveries", "Deliveries", data)
}

// requestView is one attempt's request as it was sent, secrets redacted.
type requestView struct {
	Attempt outbox.Attempt
	Headers [][2]string
}

type deliveryData struct {
	Delivery *outbox.Delivery
	Sub      *outbox.Subscription // nil when deleted
	Event    *outbox.Event        // nil when gone
	Body     string
	Attempts []requestView
	Retried  bool
}

// redacted stands for a value the page does not show.
const redacted = "[redacted]"

func (web *webApp) deliveryShow(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		web.fail(w, r, outbox.ErrNotFound)
		return
	}
	delivery, err := web.api.loadDelivery(ctx, id)
	if err != nil {
		web.fail(w, r, err)
		return
	}
	data := &deliveryData{Delivery: delivery, Retried: r.URL.Query().Get("retried") == "1"}
	if sub, err := web.api.store.SubscriptionGet(ctx, delivery.SubscriptionID); err == nil {
		data.Sub = sub
	} else if !errors.Is(err, outbox.ErrNotFound) {
		web.fail(w, r, err)
		return
	}
	if event, err := web.api.store.EventGet(ctx, delivery.EventID); err == nil {
		data.Event = event
		body, err := outbox.WebhookBody(event)
		if err != nil {
			web.fail(w, r, err)
			return
		}
		var pretty strings.Builder
		data.Body = string(body)
		if indented, err := json.MarshalIndent(json.RawMessage(body), "", "  "); err == nil {
			pretty.Write(indented)
			data.Body = pretty.String()
		}
	} else if !errors.Is(err, outbox.ErrNotFound) {
		web.fail(w, r, err)
		return
	}
	for _, attempt := range delivery.Attempts {
		headers := [][2]string{
			{"content-type", "application/json"},
			{"user-agent", "outboxd"},
			{signing.HeaderID, delivery.EventID},
			{signing.HeaderTimestamp, strconv.FormatInt(attempt.At.Unix(), 10)},
			{signing.HeaderSignature, "v1," + redacted},
		}
		if data.Sub != nil {
			for _, name := range data.Sub.HeaderNames {
				headers = append(headers, [2]string{strings.ToLower(name), redacted})
			}
		}
		data.Attempts = append(data.Attempts, requestView{Attempt: attempt, Headers: headers})
	}
	slices.Reverse(data.Attempts) // the latest first
	web.render(w, r, http.StatusOK, "delivery", fmt.Sprintf("Delivery %d", delivery.ID), data)
}

func (web *webApp) deliveryRetry(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		web.fail(w, r, outbox.ErrNotFound)
		return
	}
	delivery, err := web.api.loadDelivery(r.Context(), id)
	if err == nil {
		_, err = web.api.ops.DeliveryRetry(r.Context(), delivery.ID)
	}
	if err != nil {
		web.fail(w, r, err)
		return
	}
	http.Redirect(w, r, viewFrom(r.Context()).Base+"/deliveries/"+strconv.FormatInt(id, 10)+"?retried=1", http.StatusSeeOther)
}

// catalogEntry is one event type of the catalog page.
type catalogEntry struct {
	outbox.EventTypeInfo
	ExampleText string
	LastSeen    *time.Time
}

type catalogData struct {
	Types []catalogEntry
	// Others are types published for the organization that outboxd does not
	// produce itself, with when each was last seen.
	Others []catalogEntry
}

func (web *webApp) eventCatalog(w http.ResponseWriter, r *http.Request) {
	data, err := web.api.catalog(r)
	if err != nil {
		web.fail(w, r, err)
		return
	}
	web.render(w, r, http.StatusOK, "events", "Event catalog", data)
}

// catalog is the event catalog with when the principal's organization (every
// organization, for an admin) last saw each type.
func (a *api) catalog(r *http.Request) (*catalogData, error) {
	p := principalFrom(r.Context())
	org := r.URL.Query().Get("organization_id")
	if !p.admin {
		org = p.organizationID
	}
	seen, err := a.store.EventTypesLastSeen(r.Context(), org)
	if err != nil {
		return nil, err
	}
	data := &catalogData{}
	for _, info := range outbox.EventCatalog {
		entry := catalogEntry{EventTypeInfo: info}
		if info.Example != nil {
			if indented, err := json.MarshalIndent(info.Example, "", "  "); err == nil {
				entry.ExampleText = string(indented)
			}
		}
		if t, ok := seen[info.Type]; ok {
			entry.LastSeen = &t
			delete(seen, info.Type)
		}
		data.Types = append(data.Types, entry)
	}
	for name, t := range seen {
		data.Others = append(data.Others, catalogEntry{EventTypeInfo: outbox.EventTypeInfo{Type: name}, LastSeen: &t})
	}
	slices.SortFunc(data.Others, func(a, b catalogEntry) int { return strings.Compare(a.Type, b.Type) })
	return data, nil
}
