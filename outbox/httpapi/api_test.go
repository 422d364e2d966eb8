package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"
	"riverqueue.com/riverui"

	"github.com/outboxd/outboxd/jobs"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/httpapi"
	"github.com/outboxd/outboxd/outbox/outboxtest"
)

const adminToken = "admin-token-for-tests-0123456789"

// syncBuffer is a log sink tests read after the fact.
type syncBuffer struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{mu: make(chan struct{}, 1)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.String()
}

type apiBundle struct {
	ctx    context.Context
	store  *outbox.Store
	server *httptest.Server
	// strict serves the same schema with the default SSRF guard (no loopback).
	strict *httptest.Server
	events <-chan *river.Event
	logs   *syncBuffer
	config *httpapi.Config // what server serves, for handlers of a test's own
}

// receiver is a loopback webhook receiver answering with status().
type receiver struct {
	server *httptest.Server
	status atomic.Int64
	got    chan *http.Request
	bodies chan []byte
}

func newReceiver(t *testing.T, status int) *receiver {
	t.Helper()
	rcv := &receiver{got: make(chan *http.Request, 100), bodies: make(chan []byte, 100)}
	rcv.status.Store(int64(status))
	rcv.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rcv.got <- r
		rcv.bodies <- body
		w.WriteHeader(int(rcv.status.Load()))
	}))
	t.Cleanup(rcv.server.Close)
	return rcv
}

func setup(t *testing.T) *apiBundle {
	t.Helper()
	ctx := context.Background()
	store := outboxtest.Store(t)
	pool := outboxtest.NewPool(t, 10)
	logs := newSyncBuffer()
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	daemon, err := jobs.NewDaemon(pool, &jobs.Config{
		Store:             store,
		Logger:            logger,
		Guard:             outboxtest.LoopbackGuard(),
		Relay:             jobs.RelayConfig{PollInterval: 20 * time.Millisecond},
		FetchPollInterval: 50 * time.Millisecond,
		DeliveryWorkers:   10,
		// Failing receivers here test retries and recovery, not the circuit breaker.
		Delivery: jobs.DeliveryConfig{RequestTimeout: 5 * time.Second, Circuit: outbox.CircuitPolicy{Threshold: 1000}},
	})
	require.NoError(t, err)
	events, cancel := daemon.Client().SubscribeConfig(&river.SubscribeConfig{
		ChanSize: 1000,
		Kinds:    []river.EventKind{river.EventKindJobCompleted, river.EventKindJobFailed, river.EventKindJobCancelled},
	})
	t.Cleanup(cancel)
	require.NoError(t, daemon.Start(ctx))
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		require.NoError(t, daemon.Stop(stopCtx))
	})

	ui, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(daemon.Client(), nil),
		Logger:    slog.New(slog.DiscardHandler),
		Prefix:    "/riverui",
	})
	require.NoError(t, err)
	require.NoError(t, ui.Start(ctx))

	config := &httpapi.Config{
		Logger:      logger,
		Store:       store,
		Operations:  daemon.Operations(),
		AdminTokens: []string{adminToken},
		TokenOrganization: func(ctx context.Context, token string) (string, error) {
			tok, err := store.TokenAuthenticate(ctx, token)
			if err != nil {
				return "", err
			}
			return tok.OrganizationID, nil
		},
		RiverUI: ui,
	}
	server := httptest.NewServer(httpapi.NewHandler(config))
	t.Cleanup(server.Close)

	strictStore, err := outbox.NewStore(outboxtest.Pool(t), &outbox.StoreConfig{Schema: store.Schema(), Keyring: outboxtest.Keyring(t)})
	require.NoError(t, err)
	strictConfig := *config
	strictConfig.Store = strictStore
	strict := httptest.NewServer(httpapi.NewHandler(&strictConfig))
	t.Cleanup(strict.Close)

	return &apiBundle{ctx: ctx, store: store, server: server, strict: strict, events: events, logs: logs, config: config}
}

// response is a decoded answer.
type response struct {
	status int
	header http.Header
	raw    string
	body   map[string]any
}

func (r *response) str(key string) string {
	s, _ := r.body[key].(string)
	return s
}

func (r *response) list() []map[string]any {
	items, _ := r.body["data"].([]any)
	out := make([]map[string]any, len(items))
	for i, item := range items {
		out[i], _ = item.(map[string]any)
	}
	return out
}

func call(t *testing.T, server *httptest.Server, token, method, path string, body any) *response {
	t.Helper()
	var reader io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		reader = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		require.NoError(t, err)
		reader = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, server.URL+path, reader)
	require.NoError(t, err)
	if reader != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := server.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	out := &response{status: resp.StatusCode, header: resp.Header, raw: string(data)}
	if len(data) > 0 && strings.Contains(resp.Header.Get("Content-Type"), "json") {
		_ = json.Unmarshal(data, &out.body)
	}
	return out
}

func (b *apiBundle) admin(t *testing.T, method, path string, body any) *response {
	t.Helper()
	return call(t, b.server, adminToken, method, path, body)
}

// requireProblem checks an RFC 9457 answer.
func requireProblem(t *testing.T, r *response, status int) {
	t.Helper()
	require.Equal(t, status, r.status, r.raw)
	require.Equal(t, "application/problem+json", r.header.Get("Content-Type"), r.raw)
	require.EqualValues(t, status, r.body["status"], r.raw)
	require.NotEmpty(t, r.body["title"], r.raw)
}

// waitFinal waits for n delivery jobs to reach a final state or a retry.
func (b *apiBundle) waitFinal(t *testing.T, n int) []*rivertype.JobRow {
	t.Helper()
	var rows []*rivertype.JobRow
	timeout := time.After(20 * time.Second)
	for len(rows) < n {
		select {
		case event := <-b.events:
			if event.Job.Kind == jobs.KindDelivery && event.Job.FinalizedAt != nil {
				rows = append(rows, event.Job)
			}
		case <-timeout:
			t.Fatalf("only %d of %d deliveries finished in time", len(rows), n)
		}
	}
	return rows
}

func (b *apiBundle) createSubscription(t *testing.T, body map[string]any) *response {
	t.Helper()
	r := b.admin(t, "POST", "/v1/subscriptions", body)
	require.Equal(t, http.StatusCreated, r.status, r.raw)
	return r
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	b := setup(t)

	r := call(t, b.server, "", "GET", "/v1/subscriptions", nil)
	requireProblem(t, r, http.StatusUnauthorized)
	require.Equal(t, []string{`Bearer realm="outboxd"`, `Basic realm="outboxd", charset="UTF-8"`}, r.header.Values("WWW-Authenticate"),
		"one challenge per line: Chromium reads only the first challenge of a line")

	requireProblem(t, call(t, b.server, "wrong-token", "GET", "/v1/subscriptions", nil), http.StatusUnauthorized)
	requireProblem(t, call(t, b.server, adminToken+"x", "GET", "/v1/events", nil), http.StatusUnauthorized)
	require.Equal(t, http.StatusOK, b.admin(t, "GET", "/v1/subscriptions", nil).status)

	// Basic auth with the token as the password works too (for browsers).
	req, err := http.NewRequest("GET", b.server.URL+"/v1/subscriptions", nil)
	require.NoError(t, err)
	req.SetBasicAuth("anyone", adminToken)
	resp, err := b.server.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// Health, readiness and the OpenAPI document need no token.
	require.Equal(t, http.StatusOK, call(t, b.server, "", "GET", "/healthz", nil).status)
	doc := call(t, b.server, "", "GET", "/openapi.json", nil)
	require.Equal(t, http.StatusOK, doc.status)
	require.Equal(t, "3.1.0", doc.str("openapi"))

	require.NotContains(t, b.logs.String(), adminToken)
	require.NotContains(t, b.logs.String(), "wrong-token")
}

func TestSubscriptionLifecycle(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rcv := newReceiver(t, http.StatusNoContent)

	created := b.createSubscription(t, map[string]any{
		"url": rcv.server.URL, "event_types": []string{"agent.step.*"}, "agent_id": "agent-1",
		"description": "steps", "headers": map[string]string{"X-Team": "ml"}, "retry_schedule": []string{"1s", "5s"},
		"rate_limit": 5, "max_in_flight": 3, "ordering": "agent", "on_dead": "skip",
	})
	require.EqualValues(t, 5, created.body["rate_limit"])
	require.EqualValues(t, 3, created.body["max_in_flight"])
	require.Equal(t, "agent", created.str("ordering"))
	require.Equal(t, "skip", created.str("on_dead"))
	id, secret := created.str("id"), created.str("secret")
	require.True(t, strings.HasPrefix(id, "sub_"))
	require.True(t, strings.HasPrefix(secret, "whsec_"))
	require.Equal(t, "/v1/subscriptions/"+id, created.header.Get("Location"))

	got := b.admin(t, "GET", "/v1/subscriptions/"+id, nil)
	require.Equal(t, http.StatusOK, got.status)
	require.Equal(t, rcv.server.URL, got.str("url"))
	require.Equal(t, []any{"1s", "5s"}, got.body["retry_schedule"])
	require.NotContains(t, got.raw, secret, "the secret is shown once")

	patched := b.admin(t, "PATCH", "/v1/subscriptions/"+id, map[string]any{"event_types": []string{"*"}, "retry_schedule": nil, "description": "all", "rate_limit": 0})
	require.Equal(t, http.StatusOK, patched.status, patched.raw)
	require.Nil(t, patched.body["rate_limit"], "0 removes the limit")
	require.EqualValues(t, 3, patched.body["max_in_flight"], "left as it was")
	require.Equal(t, []any{"*"}, patched.body["event_types"])
	require.Nil(t, patched.body["retry_schedule"])
	require.Equal(t, "all", patched.str("description"))
	require.Equal(t, "agent-1", patched.str("agent_id"), "fields not sent are kept")

	disabled := b.admin(t, "POST", "/v1/subscriptions/"+id+"/disable", nil)
	require.Equal(t, false, disabled.body["enabled"])
	require.Equal(t, "disabled by an operator", disabled.str("disabled_reason"))
	enabled := b.admin(t, "POST", "/v1/subscriptions/"+id+"/enable", nil)
	require.Equal(t, true, enabled.body["enabled"])
	require.Empty(t, enabled.str("disabled_reason"))

	// Pagination: three subscriptions, pages of two.
	b.createSubscription(t, map[string]any{"url": rcv.server.URL})
	b.createSubscription(t, map[string]any{"url": rcv.server.URL})
	first := b.admin(t, "GET", "/v1/subscriptions?limit=2", nil)
	require.Len(t, first.list(), 2)
	cursor := first.str("next_cursor")
	require.NotEmpty(t, cursor)
	second := b.admin(t, "GET", "/v1/subscriptions?limit=2&cursor="+cursor, nil)
	require.Len(t, second.list(), 1)
	require.Nil(t, second.body["next_cursor"])
	require.NotEqual(t, first.list()[0]["id"], second.list()[0]["id"])
	filtered := b.admin(t, "GET", "/v1/subscriptions?agent_id=agent-1", nil)
	require.Len(t, filtered.list(), 1)
	require.Len(t, b.admin(t, "GET", "/v1/subscriptions?enabled=false", nil).list(), 0)

	for _, r := range []*response{first, second, filtered} {
		require.NotContains(t, r.raw, secret)
	}

	require.Equal(t, http.StatusNoContent, b.admin(t, "DELETE", "/v1/subscriptions/"+id, nil).status)
	requireProblem(t, b.admin(t, "GET", "/v1/subscriptions/"+id, nil), http.StatusNotFound)
	require.NotContains(t, b.logs.String(), secret)
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rcv := newReceiver(t, http.StatusNoContent)
	sub := b.createSubscription(t, map[string]any{"url": rcv.server.URL}).str("id")

	tests := []struct {
		name         string
		method, path string
		body         any
		status       int
		field        string
	}{
		{"MalformedJSON", "POST", "/v1/subscriptions", `{"url": `, http.StatusBadRequest, ""},
		{"NotAnObject", "POST", "/v1/subscriptions", `[1,2]`, http.StatusBadRequest, ""},
		{"TrailingData", "POST", "/v1/subscriptions", `{"url":"https://example.com"} {}`, http.StatusBadRequest, ""},
		{"EmptyBody", "POST", "/v1/events", ``, http.StatusBadRequest, ""},
		{"UnknownField", "POST", "/v1/subscriptions", map[string]any{"url": "https://example.com", "colour": "red"}, http.StatusBadRequest, ""},
		{"WrongType", "POST", "/v1/subscriptions", map[string]any{"url": 42}, http.StatusUnprocessableEntity, "url"},
		{"MissingURL", "POST", "/v1/subscriptions", map[string]any{}, http.StatusUnprocessableEntity, "url"},
		{"Loopback", "POST", "/v1/subscriptions", map[string]any{"url": "http://127.0.0.1:8080/hook"}, http.StatusUnprocessableEntity, "url"},
		{"Localhost", "POST", "/v1/subscriptions", map[string]any{"url": "http://localhost/hook"}, http.StatusUnprocessableEntity, "url"},
		{"Metadata", "POST", "/v1/subscriptions", map[string]any{"url": "http://169.254.169.254/latest/meta-data"}, http.StatusUnprocessableEntity, "url"},
		{"IPv4MappedIPv6", "POST", "/v1/subscriptions", map[string]any{"url": "http://[::ffff:127.0.0.1]/hook"}, http.StatusUnprocessableEntity, "url"},
		{"Private", "POST", "/v1/subscriptions", map[string]any{"url": "https://10.1.2.3/hook"}, http.StatusUnprocessableEntity, "url"},
		{"FileScheme", "POST", "/v1/subscriptions", map[string]any{"url": "file:///etc/passwd"}, http.StatusUnprocessableEntity, "url"},
		{"Credentials", "POST", "/v1/subscriptions", map[string]any{"url": "https://user:pass@93.184.216.34/hook"}, http.StatusUnprocessableEntity, "url"},
		{"BadEventType", "POST", "/v1/subscriptions", map[string]any{"url": "https://93.184.216.34/", "event_types": []string{"Agent.Step"}}, http.StatusUnprocessableEntity, "event_types"},
		{"NegativeRateLimit", "POST", "/v1/subscriptions", map[string]any{"url": "https://93.184.216.34/", "rate_limit": -1}, http.StatusUnprocessableEntity, "rate_limit"},
		{"HugeRateLimit", "PATCH", "/v1/subscriptions/" + sub, map[string]any{"rate_limit": 1_000_000}, http.StatusUnprocessableEntity, "rate_limit"},
		{"BadOrdering", "POST", "/v1/subscriptions", map[string]any{"url": "https://93.184.216.34/", "ordering": "global"}, http.StatusUnprocessableEntity, "ordering"},
		{"BadOnDead", "PATCH", "/v1/subscriptions/" + sub, map[string]any{"on_dead": "retry"}, http.StatusUnprocessableEntity, "on_dead"},
		{"NegativeMaxInFlight", "PATCH", "/v1/subscriptions/" + sub, map[string]any{"max_in_flight": -2}, http.StatusUnprocessableEntity, "max_in_flight"},
		{"ReservedEventType", "POST", "/v1/events", map[string]any{"type": "outboxd.subscription.disabled"}, http.StatusUnprocessableEntity, "type"},
		{"BadSecret", "POST", "/v1/subscriptions", map[string]any{"url": "https://93.184.216.34/", "secret": "nope"}, http.StatusUnprocessableEntity, "secret"},
		{"BadRetrySchedule", "PATCH", "/v1/subscriptions/" + sub, map[string]any{"retry_schedule": []string{"soon"}}, http.StatusUnprocessableEntity, "retry_schedule[0]"},
		{"PatchToLoopback", "PATCH", "/v1/subscriptions/" + sub, map[string]any{"url": "http://127.0.0.1/"}, http.StatusUnprocessableEntity, "url"},
		{"EmptyEventTypes", "PATCH", "/v1/subscriptions/" + sub, map[string]any{"event_types": []string{}}, http.StatusUnprocessableEntity, "event_types"},
		{"EventBadType", "POST", "/v1/events", map[string]any{"type": "Step Done"}, http.StatusUnprocessableEntity, "type"},
		{"EventMissingType", "POST", "/v1/events", map[string]any{"payload": map[string]any{}}, http.StatusUnprocessableEntity, "type"},
		{"EventPayloadNotObject", "POST", "/v1/events", map[string]any{"type": "agent.step.completed", "payload": []int{1}}, http.StatusUnprocessableEntity, "payload"},
		{"BadLimit", "GET", "/v1/deliveries?limit=0", nil, http.StatusUnprocessableEntity, "limit"},
		{"BadCursor", "GET", "/v1/events?cursor=!!", nil, http.StatusUnprocessableEntity, "cursor"},
		{"BadState", "GET", "/v1/deliveries?state=lost", nil, http.StatusUnprocessableEntity, "state"},
		{"BadSince", "GET", "/v1/deliveries?since=yesterday", nil, http.StatusUnprocessableEntity, "since"},
		{"BadEnabled", "GET", "/v1/subscriptions?enabled=maybe", nil, http.StatusUnprocessableEntity, "enabled"},
		{"RecoverWithoutSince", "POST", "/v1/subscriptions/" + sub + "/recover", map[string]any{}, http.StatusUnprocessableEntity, "since"},
		{"RecoverBackwards", "POST", "/v1/subscriptions/" + sub + "/recover", map[string]any{"since": "2030-01-01T00:00:00Z", "until": "2029-01-01T00:00:00Z"}, http.StatusUnprocessableEntity, "until"},
		{"RotateBadGrace", "POST", "/v1/subscriptions/" + sub + "/secret/rotate", map[string]any{"grace": "forever"}, http.StatusUnprocessableEntity, "grace"},
		{"RotateGraceTooLong", "POST", "/v1/subscriptions/" + sub + "/secret/rotate", map[string]any{"grace": "200h"}, http.StatusUnprocessableEntity, "grace"},
		{"AgentWebhookWithoutURL", "PUT", "/v1/agents/agent-9/webhook", map[string]any{"webhook_events": []string{"*"}}, http.StatusUnprocessableEntity, "webhook_url"},
		{"AgentWebhookUnsafeURL", "PUT", "/v1/agents/agent-9/webhook", map[string]any{"webhook_url": "http://169.254.169.254/"}, http.StatusUnprocessableEntity, "webhook_url"},
		{"UnknownSubscription", "GET", "/v1/subscriptions/sub_doesnotexist", nil, http.StatusNotFound, ""},
		{"UnknownSubscriptionPatch", "PATCH", "/v1/subscriptions/sub_doesnotexist", map[string]any{"description": "x"}, http.StatusNotFound, ""},
		{"UnknownSubscriptionTest", "POST", "/v1/subscriptions/sub_doesnotexist/test", nil, http.StatusNotFound, ""},
		{"UnknownSubscriptionDelete", "DELETE", "/v1/subscriptions/sub_doesnotexist", nil, http.StatusNotFound, ""},
		{"UnknownDelivery", "GET", "/v1/deliveries/987654321", nil, http.StatusNotFound, ""},
		{"NonNumericDelivery", "GET", "/v1/deliveries/abc", nil, http.StatusNotFound, ""},
		{"UnknownDeliveryRetry", "POST", "/v1/deliveries/987654321/retry", nil, http.StatusNotFound, ""},
		{"UnknownEvent", "GET", "/v1/events/evt_doesnotexist", nil, http.StatusNotFound, ""},
		{"UnknownAgentWebhook", "GET", "/v1/agents/nobody/webhook", nil, http.StatusNotFound, ""},
		{"UnknownRecovery", "GET", "/v1/recoveries/987654321", nil, http.StatusNotFound, ""},
		{"UnknownEndpoint", "GET", "/v1/nothing", nil, http.StatusNotFound, ""},
	}
	before := b.admin(t, "GET", "/v1/subscriptions", nil).raw
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := call(t, b.strict, adminToken, tt.method, tt.path, tt.body)
			requireProblem(t, r, tt.status)
			if tt.field != "" {
				errs, _ := r.body["errors"].([]any)
				require.NotEmpty(t, errs, r.raw)
				first, _ := errs[0].(map[string]any)
				require.Equal(t, tt.field, first["field"], r.raw)
			}
		})
	}
	require.Equal(t, before, b.admin(t, "GET", "/v1/subscriptions", nil).raw, "bad input changed nothing")
}

func TestOrganizationTokens(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rcv := newReceiver(t, http.StatusNoContent)

	tokenA, err := b.store.TokenCreate(b.ctx, &outbox.TokenCreateParams{OrganizationID: "org-a", Name: "a"})
	require.NoError(t, err)
	tokenB, err := b.store.TokenCreate(b.ctx, &outbox.TokenCreateParams{OrganizationID: "org-b", Name: "b"})
	require.NoError(t, err)
	a := func(method, path string, body any) *response {
		return call(t, b.server, tokenA.Secret, method, path, body)
	}
	bb := func(method, path string, body any) *response {
		return call(t, b.server, tokenB.Secret, method, path, body)
	}

	// A token's subscriptions belong to its organization, whatever the body says.
	created := a("POST", "/v1/subscriptions", map[string]any{"url": rcv.server.URL})
	require.Equal(t, http.StatusCreated, created.status, created.raw)
	require.Equal(t, "org-a", created.str("organization_id"))
	requireProblem(t, a("POST", "/v1/subscriptions", map[string]any{"url": rcv.server.URL, "organization_id": "org-b"}), http.StatusUnprocessableEntity)
	subA := created.str("id")

	// Organization B sees none of it: 404, not 403.
	for _, tt := range []struct{ method, path string }{
		{"GET", "/v1/subscriptions/" + subA},
		{"PATCH", "/v1/subscriptions/" + subA},
		{"DELETE", "/v1/subscriptions/" + subA},
		{"POST", "/v1/subscriptions/" + subA + "/test"},
		{"POST", "/v1/subscriptions/" + subA + "/disable"},
		{"POST", "/v1/subscriptions/" + subA + "/secret/rotate"},
	} {
		var body any
		if tt.method == "PATCH" {
			body = map[string]any{"description": "mine now"}
		}
		requireProblem(t, bb(tt.method, tt.path, body), http.StatusNotFound)
	}
	require.Empty(t, bb("GET", "/v1/subscriptions", nil).list())
	require.Empty(t, bb("GET", "/v1/subscriptions?organization_id=org-a", nil).list())
	require.Len(t, a("GET", "/v1/subscriptions", nil).list(), 1)

	// Events and their deliveries follow the organization too.
	event := a("POST", "/v1/events", map[string]any{"type": "agent.step.completed", "agent_id": "agent-1"})
	require.Equal(t, http.StatusCreated, event.status, event.raw)
	require.Equal(t, "org-a", event.str("organization_id"))
	b.waitFinal(t, 1)
	requireProblem(t, bb("GET", "/v1/events/"+event.str("id"), nil), http.StatusNotFound)
	require.Empty(t, bb("GET", "/v1/events", nil).list())
	require.Empty(t, bb("GET", "/v1/deliveries", nil).list())
	deliveries := a("GET", "/v1/deliveries", nil).list()
	require.Len(t, deliveries, 1)
	deliveryID := strconv.FormatFloat(deliveries[0]["id"].(float64), 'f', 0, 64)
	requireProblem(t, bb("GET", "/v1/deliveries/"+deliveryID, nil), http.StatusNotFound)
	requireProblem(t, bb("POST", "/v1/deliveries/"+deliveryID+"/retry", nil), http.StatusNotFound)
	require.Equal(t, http.StatusOK, a("GET", "/v1/deliveries/"+deliveryID, nil).status)

	// An agent's webhook set by organization A cannot be read or taken over by B.
	require.Equal(t, http.StatusCreated, a("PUT", "/v1/agents/agent-a/webhook", map[string]any{"webhook_url": rcv.server.URL}).status)
	requireProblem(t, bb("GET", "/v1/agents/agent-a/webhook", nil), http.StatusNotFound)
	requireProblem(t, bb("PUT", "/v1/agents/agent-a/webhook", map[string]any{"webhook_url": rcv.server.URL}), http.StatusNotFound)
	requireProblem(t, bb("DELETE", "/v1/agents/agent-a/webhook", nil), http.StatusNotFound)

	// Organization tokens do not open the River UI; a revoked token opens nothing.
	requireProblem(t, a("GET", "/riverui/", nil), http.StatusForbidden)
	require.NoError(t, b.store.TokenRevoke(b.ctx, tokenA.ID))
	requireProblem(t, a("GET", "/v1/subscriptions", nil), http.StatusUnauthorized)
	require.NotContains(t, b.logs.String(), tokenA.Secret)
}

func TestDeadDeliveryRetriedThroughTheAPI(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rcv := newReceiver(t, http.StatusInternalServerError)
	sub := b.createSubscription(t, map[string]any{"url": rcv.server.URL, "retry_schedule": []string{"10ms"}}).str("id")

	event := b.admin(t, "POST", "/v1/events", map[string]any{"type": "agent.run.completed", "payload": map[string]any{"run_id": "run-1"}})
	require.Equal(t, http.StatusCreated, event.status, event.raw)
	rows := b.waitFinal(t, 1)
	require.Equal(t, rivertype.JobStateDiscarded, rows[0].State)

	dead := b.admin(t, "GET", "/v1/deliveries?state=dead&subscription_id="+sub, nil).list()
	require.Len(t, dead, 1)
	id := strconv.FormatFloat(dead[0]["id"].(float64), 'f', 0, 64)
	require.EqualValues(t, 2, dead[0]["attempt"])

	rcv.status.Store(http.StatusNoContent)
	retried := b.admin(t, "POST", "/v1/deliveries/"+id+"/retry", nil)
	require.Equal(t, http.StatusAccepted, retried.status, retried.raw)
	rows = b.waitFinal(t, 1)
	require.Equal(t, rivertype.JobStateCompleted, rows[0].State)

	delivery := b.admin(t, "GET", "/v1/deliveries/"+id, nil)
	require.Equal(t, "delivered", delivery.str("state"))
	require.EqualValues(t, 3, delivery.body["attempt"])
	attempts, _ := delivery.body["attempts"].([]any)
	require.Len(t, attempts, 3)
	var codes []float64
	for _, a := range attempts {
		codes = append(codes, a.(map[string]any)["status_code"].(float64))
	}
	require.Equal(t, []float64{500, 500, 204}, codes)

	withDeliveries := b.admin(t, "GET", "/v1/events/"+event.str("id"), nil)
	require.Len(t, withDeliveries.body["deliveries"], 1)
}

func TestRecoverRedeliversOnlyTheWindow(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rcv := newReceiver(t, http.StatusServiceUnavailable)
	sub := b.createSubscription(t, map[string]any{"url": rcv.server.URL, "retry_schedule": []string{"1ms"}}).str("id")

	publish := func(n int) {
		for range n {
			require.Equal(t, http.StatusCreated, b.admin(t, "POST", "/v1/events", map[string]any{"type": "agent.step.failed"}).status)
		}
		b.waitFinal(t, n)
	}
	publish(1) // dies before the window
	since := time.Now()
	publish(3) // dies in the window
	until := time.Now()
	publish(1) // dies after it
	require.Len(t, b.admin(t, "GET", "/v1/deliveries?state=dead", nil).list(), 5)

	rcv.status.Store(http.StatusOK)
	started := b.admin(t, "POST", "/v1/subscriptions/"+sub+"/recover", map[string]any{"since": since, "until": until})
	require.Equal(t, http.StatusAccepted, started.status, started.raw)
	recoveryPath := started.header.Get("Location")
	require.NotEmpty(t, recoveryPath)

	b.waitFinal(t, 3)
	require.Eventually(t, func() bool {
		return b.admin(t, "GET", recoveryPath, nil).str("state") == "completed"
	}, 10*time.Second, 20*time.Millisecond)
	recovery := b.admin(t, "GET", recoveryPath, nil)
	require.EqualValues(t, 3, recovery.body["retried"])
	require.Len(t, b.admin(t, "GET", "/v1/deliveries?state=delivered", nil).list(), 3)
	require.Len(t, b.admin(t, "GET", "/v1/deliveries?state=dead", nil).list(), 2, "nothing outside the window")
}

func TestSubscriptionTestSendsASignedWebhook(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rcv := newReceiver(t, http.StatusAccepted)
	created := b.createSubscription(t, map[string]any{"url": rcv.server.URL})

	result := b.admin(t, "POST", "/v1/subscriptions/"+created.str("id")+"/test", nil)
	require.Equal(t, http.StatusOK, result.status, result.raw)
	require.Equal(t, true, result.body["delivered"])
	require.EqualValues(t, 202, result.body["status_code"])

	req, body := <-rcv.got, <-rcv.bodies
	verifier, err := standardwebhooks.NewWebhook(created.str("secret"))
	require.NoError(t, err)
	require.NoError(t, verifier.Verify(body, req.Header))
	var webhook map[string]any
	require.NoError(t, json.Unmarshal(body, &webhook))
	require.Equal(t, "webhook.test", webhook["type"])

	// A failing receiver is reported, not an API error.
	rcv.status.Store(http.StatusTeapot)
	failed := b.admin(t, "POST", "/v1/subscriptions/"+created.str("id")+"/test", nil)
	require.Equal(t, http.StatusOK, failed.status)
	require.Equal(t, false, failed.body["delivered"])
	require.EqualValues(t, 418, failed.body["status_code"])
	require.Equal(t, outbox.ErrorClassHTTPStatus, failed.str("error_class"))
}

func TestSecretRotationSignsWithBoth(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rcv := newReceiver(t, http.StatusNoContent)
	created := b.createSubscription(t, map[string]any{"url": rcv.server.URL})
	id, oldSecret := created.str("id"), created.str("secret")

	rotated := b.admin(t, "POST", "/v1/subscriptions/"+id+"/secret/rotate", map[string]any{"grace": "1h"})
	require.Equal(t, http.StatusOK, rotated.status, rotated.raw)
	newSecret := rotated.str("secret")
	require.True(t, strings.HasPrefix(newSecret, "whsec_"))
	require.NotEqual(t, oldSecret, newSecret)
	require.NotContains(t, b.admin(t, "GET", "/v1/subscriptions/"+id, nil).raw, newSecret)

	require.Equal(t, true, b.admin(t, "POST", "/v1/subscriptions/"+id+"/test", nil).body["delivered"])
	req, body := <-rcv.got, <-rcv.bodies
	for _, secret := range []string{oldSecret, newSecret} {
		verifier, err := standardwebhooks.NewWebhook(secret)
		require.NoError(t, err)
		require.NoError(t, verifier.Verify(body, req.Header), "a receiver with either secret accepts")
	}
	require.NotContains(t, b.logs.String(), newSecret)
}

func TestAgentWebhook(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rcv := newReceiver(t, http.StatusNoContent)

	created := b.admin(t, "PUT", "/v1/agents/agent-7/webhook", map[string]any{
		"webhook_url": rcv.server.URL, "webhook_events": []string{"agent.step.completed"},
	})
	require.Equal(t, http.StatusCreated, created.status, created.raw)
	secret := created.str("webhook_secret")
	require.True(t, strings.HasPrefix(secret, "whsec_"))
	require.Equal(t, true, created.body["webhook_enabled"])

	got := b.admin(t, "GET", "/v1/agents/agent-7/webhook", nil)
	require.Equal(t, http.StatusOK, got.status)
	require.Empty(t, got.str("webhook_secret"), "write-only")
	require.Equal(t, []any{"agent.step.completed"}, got.body["webhook_events"])

	// An event of the agent reaches the webhook, signed with its secret.
	require.Equal(t, http.StatusCreated, b.admin(t, "POST", "/v1/events", map[string]any{"type": "agent.step.completed", "agent_id": "agent-7"}).status)
	req, body := <-rcv.got, <-rcv.bodies
	verifier, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	require.NoError(t, verifier.Verify(body, req.Header))
	b.waitFinal(t, 1)

	// Replacing the secret and disabling.
	const replacement = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	updated := b.admin(t, "PUT", "/v1/agents/agent-7/webhook", map[string]any{
		"webhook_url": rcv.server.URL, "webhook_secret": replacement, "webhook_enabled": false,
	})
	require.Equal(t, http.StatusOK, updated.status, updated.raw)
	require.Equal(t, false, updated.body["webhook_enabled"])
	require.Empty(t, updated.str("webhook_secret"))
	require.NotContains(t, updated.raw, replacement)
	require.Equal(t, http.StatusOK, b.admin(t, "PUT", "/v1/agents/agent-7/webhook", map[string]any{"webhook_url": rcv.server.URL, "webhook_enabled": true}).status)
	require.Equal(t, true, b.admin(t, "POST", "/v1/subscriptions/"+got.str("subscription_id")+"/test", nil).body["delivered"])
	req, body = <-rcv.got, <-rcv.bodies
	newVerifier, err := standardwebhooks.NewWebhook(replacement)
	require.NoError(t, err)
	require.NoError(t, newVerifier.Verify(body, req.Header))
	require.Error(t, verifier.Verify(body, req.Header), "the replaced secret no longer signs")

	// The agent's webhook is also an ordinary subscription.
	require.Len(t, b.admin(t, "GET", "/v1/subscriptions?agent_id=agent-7", nil).list(), 1)
	require.Equal(t, http.StatusNoContent, b.admin(t, "DELETE", "/v1/agents/agent-7/webhook", nil).status)
	requireProblem(t, b.admin(t, "GET", "/v1/agents/agent-7/webhook", nil), http.StatusNotFound)
}

func TestEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)

	first := b.admin(t, "POST", "/v1/events", map[string]any{
		"type": "agent.message.sent", "agent_id": "agent-1", "organization_id": "org-1",
		"payload": map[string]any{"message_id": "message-1"}, "idempotency_key": "k-1",
	})
	require.Equal(t, http.StatusCreated, first.status, first.raw)
	require.True(t, strings.HasPrefix(first.str("id"), "evt_"))
	again := b.admin(t, "POST", "/v1/events", map[string]any{"type": "agent.message.sent", "organization_id": "org-1", "idempotency_key": "k-1"})
	require.Equal(t, first.str("id"), again.str("id"), "a repeated idempotency key returns the first event")
	require.Equal(t, http.StatusCreated, b.admin(t, "POST", "/v1/events", map[string]any{"type": "agent.step.completed", "agent_id": "agent-2"}).status)

	all := b.admin(t, "GET", "/v1/events", nil).list()
	require.Len(t, all, 2)
	require.Equal(t, "agent.step.completed", all[0]["type"], "newest first")
	require.Len(t, b.admin(t, "GET", "/v1/events?agent_id=agent-1", nil).list(), 1)
	require.Len(t, b.admin(t, "GET", "/v1/events?type=agent.step.completed", nil).list(), 1)
	page1 := b.admin(t, "GET", "/v1/events?limit=1", nil)
	page2 := b.admin(t, "GET", "/v1/events?limit=1&cursor="+page1.str("next_cursor"), nil)
	require.Equal(t, first.str("id"), page2.list()[0]["id"])

	got := b.admin(t, "GET", "/v1/events/"+first.str("id"), nil)
	require.Equal(t, map[string]any{"message_id": "message-1"}, got.body["payload"])
	require.Equal(t, []any{}, got.body["deliveries"])
}

func TestRiverUIBehindAuth(t *testing.T) {
	t.Parallel()
	b := setup(t)

	r := call(t, b.server, "", "GET", "/riverui/", nil)
	requireProblem(t, r, http.StatusUnauthorized)
	require.Contains(t, r.header.Values("WWW-Authenticate"), `Basic realm="outboxd", charset="UTF-8"`, "a browser is asked for credentials")

	req, err := http.NewRequest("GET", b.server.URL+"/riverui/", nil)
	require.NoError(t, err)
	req.SetBasicAuth("admin", adminToken)
	resp, err := b.server.Client().Do(req)
	require.NoError(t, err)
	page, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(page), "<html")

	jobsAPI := b.admin(t, "GET", "/riverui/api/jobs?state=completed", nil)
	require.Equal(t, http.StatusOK, jobsAPI.status, jobsAPI.raw)
}
