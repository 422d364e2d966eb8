package jobs

import (
	"cmp"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/netguard"
	"github.com/outboxd/outboxd/outbox/outboxtest"
	"github.com/outboxd/outboxd/outbox/signing"
)

// received is one request a test receiver got.
type received struct {
	header http.Header
	body   []byte
}

// reply is what a test receiver answers.
type reply struct {
	status int // default 204
	header map[string]string
	body   string
}

// testReceiver is a real HTTP server on loopback that records every request and
// answers the n-th one (1-based) with respond(n, request, body).
type testReceiver struct {
	server   *httptest.Server
	requests chan received
	count    atomic.Int64
}

func newTestReceiver(t *testing.T, respond func(n int64, r *http.Request, body []byte) reply) *testReceiver {
	t.Helper()
	rcv := &testReceiver{requests: make(chan received, 10_000)}
	rcv.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		n := rcv.count.Add(1)
		answer := reply{}
		if respond != nil {
			answer = respond(n, r, body)
		}
		rcv.requests <- received{header: r.Header.Clone(), body: body}
		for name, value := range answer.header {
			w.Header().Set(name, value)
		}
		w.WriteHeader(cmp.Or(answer.status, http.StatusNoContent))
		_, _ = io.WriteString(w, answer.body)
	}))
	t.Cleanup(rcv.server.Close)
	return rcv
}

func (r *testReceiver) next(t *testing.T) received {
	t.Helper()
	select {
	case req := <-r.requests:
		return req
	case <-time.After(15 * time.Second):
		t.Fatalf("receiver got no request in time (%d so far)", r.count.Load())
		return received{}
	}
}

type daemonBundle struct {
	ctx    context.Context
	store  *outbox.Store
	pool   *pgxpool.Pool
	daemon *Daemon
	events <-chan *river.Event
}

// setupDaemon starts a daemon on a fresh schema with fast polling and loopback allowed.
func setupDaemon(t *testing.T, mutate func(*Config)) *daemonBundle {
	t.Helper()
	ctx := context.Background()
	store := outboxtest.Store(t)
	pool := outboxtest.NewPool(t, 12)
	return startDaemon(t, ctx, store, pool, mutate)
}

func startDaemon(t *testing.T, ctx context.Context, store *outbox.Store, pool *pgxpool.Pool, mutate func(*Config)) *daemonBundle {
	t.Helper()
	config := &Config{
		Store:             store,
		Guard:             outboxtest.LoopbackGuard(),
		Relay:             RelayConfig{PollInterval: 20 * time.Millisecond},
		FetchPollInterval: 50 * time.Millisecond,
		DeliveryWorkers:   20,
		Delivery:          DeliveryConfig{RequestTimeout: 5 * time.Second},
	}
	if mutate != nil {
		mutate(config)
	}
	daemon, err := NewDaemon(pool, config)
	require.NoError(t, err)
	events, cancel := daemon.Client().SubscribeConfig(&river.SubscribeConfig{
		ChanSize: 10_000,
		Kinds:    []river.EventKind{river.EventKindJobCompleted, river.EventKindJobFailed, river.EventKindJobCancelled},
	})
	t.Cleanup(cancel)
	require.NoError(t, daemon.Start(ctx))
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		require.NoError(t, daemon.Stop(stopCtx))
	})
	return &daemonBundle{ctx: ctx, store: store, pool: pool, daemon: daemon, events: events}
}

// waitFinal waits for n delivery jobs to reach a final state and returns their rows.
func (b *daemonBundle) waitFinal(t *testing.T, n int) []*rivertype.JobRow {
	t.Helper()
	var rows []*rivertype.JobRow
	timeout := time.After(20 * time.Second)
	for len(rows) < n {
		select {
		case event := <-b.events:
			if event.Job.Kind == KindDelivery && event.Job.FinalizedAt != nil {
				rows = append(rows, event.Job)
			}
		case <-timeout:
			t.Fatalf("only %d of %d deliveries finished in time", len(rows), n)
		}
	}
	return rows
}

func TestDeliveryEndToEnd(t *testing.T) {
	t.Parallel()

	b := setupDaemon(t, nil)
	rcv := newTestReceiver(t, nil)
	sub := outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{URL: rcv.server.URL + "/hooks"})

	event := outboxtest.Event(b.ctx, t, b.store, &outboxtest.EventOpts{
		Type:           "agent.step.completed",
		AgentID:        "agent-1",
		OrganizationID: "org-1",
		Payload:        map[string]any{"step_id": "step-1", "tokens": 42},
	})

	req := rcv.next(t)
	require.Equal(t, event.ID, req.header.Get(signing.HeaderID))
	require.Equal(t, "application/json", req.header.Get("Content-Type"))
	require.Equal(t, "outboxd", req.header.Get("User-Agent"))

	// The official Standard Webhooks verifier accepts what we sent.
	wh, err := standardwebhooks.NewWebhook(sub.Secret.String())
	require.NoError(t, err)
	require.NoError(t, wh.Verify(req.body, req.header))

	var body map[string]any
	require.NoError(t, json.Unmarshal(req.body, &body))
	require.Equal(t, map[string]any{
		"id":              event.ID,
		"type":            "agent.step.completed",
		"timestamp":       event.CreatedAt.UTC().Format(time.RFC3339Nano),
		"organization_id": "org-1",
		"agent_id":        "agent-1",
		"data":            map[string]any{"step_id": "step-1", "tokens": float64(42)},
	}, body)

	b.waitFinal(t, 1)
	deliveries, err := b.store.DeliveryList(b.ctx, &outbox.DeliveryListParams{EventID: event.ID})
	require.NoError(t, err)
	require.Len(t, deliveries, 1)
	d := deliveries[0]
	require.Equal(t, outbox.DeliveryDelivered, d.State)
	require.Equal(t, sub.ID, d.SubscriptionID)
	require.Equal(t, 1, d.Attempt)
	require.Equal(t, 8, d.MaxAttempts, "default schedule: 8 attempts")
	require.NotNil(t, d.DeliveredAt)
	require.NotNil(t, d.LastStatusCode)
	require.Equal(t, http.StatusNoContent, *d.LastStatusCode)
	require.Len(t, d.Attempts, 1)
	require.Equal(t, http.StatusNoContent, d.Attempts[0].StatusCode)
	require.Empty(t, d.Attempts[0].ErrorClass)
}

func TestRolledBackEventIsNeverDelivered(t *testing.T) {
	t.Parallel()

	b := setupDaemon(t, nil)
	rcv := newTestReceiver(t, nil)
	outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{URL: rcv.server.URL})

	tx, err := b.pool.Begin(b.ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(context.WithoutCancel(b.ctx)) })
	_, err = b.store.PublishTx(b.ctx, tx, &outbox.PublishParams{Type: "agent.step.failed", AgentID: "agent-rolled-back"})
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(b.ctx))

	// A committed event published after it: once it arrives, the relay has passed
	// every position the rolled-back one could have had.
	marker := outboxtest.Event(b.ctx, t, b.store, &outboxtest.EventOpts{Type: "agent.step.completed"})
	req := rcv.next(t)
	require.Equal(t, marker.ID, req.header.Get(signing.HeaderID))
	b.waitFinal(t, 1)
	require.EqualValues(t, 1, rcv.count.Load())
}

func TestDeliveredOncePerMatchingSubscription(t *testing.T) {
	t.Parallel()

	b := setupDaemon(t, nil)
	var mu sync.Mutex
	got := map[string][]string{} // path -> event types received
	rcv := newTestReceiver(t, func(_ int64, r *http.Request, _ []byte) reply {
		mu.Lock()
		got[r.URL.Path] = append(got[r.URL.Path], r.Header.Get(signing.HeaderID))
		mu.Unlock()
		return reply{status: http.StatusOK}
	})
	subscribe := func(path string, opts outboxtest.SubscriptionOpts) {
		opts.URL = rcv.server.URL + path
		outboxtest.Subscription(b.ctx, t, b.store, &opts)
	}
	subscribe("/agent1-steps", outboxtest.SubscriptionOpts{AgentID: "agent-1", EventTypes: []string{"agent.step.*"}})
	subscribe("/org1-all", outboxtest.SubscriptionOpts{OrganizationID: "org-1", EventTypes: []string{"*"}})
	subscribe("/global-runs", outboxtest.SubscriptionOpts{EventTypes: []string{"agent.run.completed"}})
	subscribe("/agent2-org1", outboxtest.SubscriptionOpts{AgentID: "agent-2", OrganizationID: "org-1"})

	stepA1 := outboxtest.Event(b.ctx, t, b.store, &outboxtest.EventOpts{Type: "agent.step.completed", AgentID: "agent-1", OrganizationID: "org-1"})
	runA2 := outboxtest.Event(b.ctx, t, b.store, &outboxtest.EventOpts{Type: "agent.run.completed", AgentID: "agent-2", OrganizationID: "org-2"})
	toolA2 := outboxtest.Event(b.ctx, t, b.store, &outboxtest.EventOpts{Type: "agent.tool.attached", AgentID: "agent-2", OrganizationID: "org-1"})
	unmatched := outboxtest.Event(b.ctx, t, b.store, &outboxtest.EventOpts{Type: "agent.message.sent", AgentID: "agent-3"})

	want := map[string][]string{
		"/agent1-steps": {stepA1.ID},
		"/org1-all":     {stepA1.ID, toolA2.ID},
		"/global-runs":  {runA2.ID},
		"/agent2-org1":  {toolA2.ID},
	}
	b.waitFinal(t, 5)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, got, len(want))
	for path, ids := range want {
		require.ElementsMatch(t, ids, got[path], path)
	}
	deliveries, err := b.store.DeliveryList(b.ctx, &outbox.DeliveryListParams{EventID: unmatched.ID})
	require.NoError(t, err)
	require.Empty(t, deliveries)
}

func TestReceiverFailingTwiceGetsTheThirdAttempt(t *testing.T) {
	t.Parallel()

	b := setupDaemon(t, nil)
	rcv := newTestReceiver(t, func(n int64, _ *http.Request, _ []byte) reply {
		if n <= 2 {
			return reply{status: http.StatusInternalServerError}
		}
		return reply{status: http.StatusOK}
	})
	outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{
		URL:           rcv.server.URL,
		RetrySchedule: outbox.RetrySchedule{10 * time.Millisecond, 10 * time.Millisecond, time.Hour},
	})
	event := outboxtest.Event(b.ctx, t, b.store, nil)

	ids := []string{rcv.next(t).header.Get(signing.HeaderID), rcv.next(t).header.Get(signing.HeaderID), rcv.next(t).header.Get(signing.HeaderID)}
	require.Equal(t, []string{event.ID, event.ID, event.ID}, ids, "webhook-id is stable across retries")

	rows := b.waitFinal(t, 1)
	require.Equal(t, rivertype.JobStateCompleted, rows[0].State)
	d, err := b.store.DeliveryGet(b.ctx, rows[0].ID)
	require.NoError(t, err)
	require.Equal(t, outbox.DeliveryDelivered, d.State)
	require.Equal(t, 3, d.Attempt)
	require.Equal(t, 4, d.MaxAttempts)
	require.Len(t, d.Attempts, 3)
	for i, status := range []int{500, 500, 200} {
		require.Equal(t, i+1, d.Attempts[i].Attempt)
		require.Equal(t, status, d.Attempts[i].StatusCode)
	}
	require.Equal(t, outbox.ErrorClassHTTPStatus, d.Attempts[0].ErrorClass)
	require.Empty(t, d.LastError, "delivered: the failures before are in the attempt log only")
}

func TestAlwaysFailingDeliveryEndsDead(t *testing.T) {
	t.Parallel()

	b := setupDaemon(t, nil)
	rcv := newTestReceiver(t, func(int64, *http.Request, []byte) reply {
		return reply{status: http.StatusServiceUnavailable, header: map[string]string{"Retry-After": "0"}, body: `{"error":"overloaded"}`}
	})
	outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{
		URL:           rcv.server.URL,
		RetrySchedule: outbox.RetrySchedule{5 * time.Millisecond, 5 * time.Millisecond},
	})
	outboxtest.Event(b.ctx, t, b.store, nil)

	var dead *rivertype.JobRow
	for dead == nil {
		row := b.waitFinal(t, 1)[0]
		if row.State == rivertype.JobStateDiscarded {
			dead = row
		}
	}
	d, err := b.store.DeliveryGet(b.ctx, dead.ID)
	require.NoError(t, err)
	require.Equal(t, outbox.DeliveryDead, d.State)
	require.Equal(t, 3, d.Attempt)
	require.Nil(t, d.DeliveredAt)
	require.Nil(t, d.NextAttemptAt)
	require.Len(t, d.Attempts, 3)
	for _, a := range d.Attempts {
		require.Equal(t, http.StatusServiceUnavailable, a.StatusCode)
		require.Equal(t, `{"error":"overloaded"}`, a.Response)
	}
	require.EqualValues(t, 3, rcv.count.Load())
}

func TestGoneDisablesSubscription(t *testing.T) {
	t.Parallel()

	b := setupDaemon(t, nil)
	rcv := newTestReceiver(t, func(int64, *http.Request, []byte) reply { return reply{status: http.StatusGone} })
	sub := outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{URL: rcv.server.URL})
	operator := newTestReceiver(t, nil)
	outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{URL: operator.server.URL, EventTypes: []string{"outboxd.*"}})
	outboxtest.Event(b.ctx, t, b.store, nil)

	row := b.waitFinal(t, 1)[0]
	require.Equal(t, rivertype.JobStateCancelled, row.State)
	told := operator.nextOfType(t, outbox.EventSubscriptionDisabled)
	require.Equal(t, sub.ID, told.Data["subscription_id"])
	require.Equal(t, "receiver answered 410 Gone", told.Data["reason"])

	got, err := b.store.SubscriptionGet(b.ctx, sub.ID)
	require.NoError(t, err)
	require.False(t, got.Enabled)
	require.Equal(t, "receiver answered 410 Gone", got.DisabledReason)
	require.NotNil(t, got.DisabledAt)

	d, err := b.store.DeliveryGet(b.ctx, row.ID)
	require.NoError(t, err)
	require.Equal(t, outbox.DeliveryCancelled, d.State)
	require.Equal(t, http.StatusGone, *d.LastStatusCode)
	require.EqualValues(t, 1, rcv.count.Load())
}

func TestDialTimeGuardBlocksLoopback(t *testing.T) {
	t.Parallel()

	// The store (write-time check) allows loopback; the daemon's dialer does not.
	b := setupDaemon(t, func(c *Config) { c.Guard = &netguard.Guard{} })
	rcv := newTestReceiver(t, nil)
	outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{
		URL:           rcv.server.URL,
		RetrySchedule: outbox.RetrySchedule{time.Hour},
	})
	outboxtest.Event(b.ctx, t, b.store, nil)

	var failed *river.Event
	for failed == nil {
		select {
		case event := <-b.events:
			if event.Job.Kind == KindDelivery {
				failed = event
			}
		case <-time.After(15 * time.Second):
			t.Fatal("no attempt in time")
		}
	}
	require.Equal(t, river.EventKindJobFailed, failed.Kind)
	d, err := b.store.DeliveryGet(b.ctx, failed.Job.ID)
	require.NoError(t, err)
	require.Equal(t, outbox.DeliveryRetrying, d.State)
	require.Len(t, d.Attempts, 1)
	require.Equal(t, outbox.ErrorClassBlocked, d.Attempts[0].ErrorClass)
	require.Contains(t, d.LastError, "loopback address")
	require.Zero(t, rcv.count.Load(), "the receiver must never be contacted")
}

func TestTwoDaemonsDeliverEachEventOnce(t *testing.T) {
	t.Parallel()

	first := setupDaemon(t, nil)
	second := startDaemon(t, first.ctx, first.store, outboxtest.NewPool(t, 12), nil)
	rcv := newTestReceiver(t, nil)
	outboxtest.Subscription(first.ctx, t, first.store, &outboxtest.SubscriptionOpts{URL: rcv.server.URL})

	const n = 300
	published := map[string]bool{}
	for i := range n {
		event := outboxtest.Event(first.ctx, t, first.store, &outboxtest.EventOpts{Payload: map[string]int{"i": i}})
		published[event.ID] = true
	}

	seen := map[string]int{}
	for range n {
		seen[rcv.next(t).header.Get(signing.HeaderID)]++
	}
	require.Len(t, seen, n)
	for id := range published {
		require.Equal(t, 1, seen[id], id)
	}

	// Every delivery job has finished, between the two daemons, so no late duplicate can follow.
	completed := map[*daemonBundle]int{}
	timeout := time.After(20 * time.Second)
	for completed[first]+completed[second] < n {
		select {
		case event := <-first.events:
			if event.Job.Kind == KindDelivery && event.Job.State == rivertype.JobStateCompleted {
				completed[first]++
			}
		case event := <-second.events:
			if event.Job.Kind == KindDelivery && event.Job.State == rivertype.JobStateCompleted {
				completed[second]++
			}
		case <-timeout:
			t.Fatalf("only %d of %d deliveries completed", completed[first]+completed[second], n)
		}
	}
	require.EqualValues(t, n, rcv.count.Load())
	t.Logf("deliveries completed per daemon: %d and %d", completed[first], completed[second])
}

func TestAttemptErrorsAreClassified(t *testing.T) {
	t.Parallel()

	b := setupDaemon(t, func(c *Config) { c.Delivery.RequestTimeout = 300 * time.Millisecond })
	hang := make(chan struct{})
	hanging := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hanging.Close)
	t.Cleanup(func() { close(hang) }) // runs first: release the handler, then Close
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close() // nothing listens there any more

	once := outbox.RetrySchedule{time.Hour}
	subs := map[string]string{
		outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{URL: hanging.URL, RetrySchedule: once}).ID: outbox.ErrorClassTimeout,
		outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{URL: closedURL, RetrySchedule: once}).ID:   outbox.ErrorClassConnection,
	}
	outboxtest.Event(b.ctx, t, b.store, nil)

	for range subs {
		var event *river.Event
		for event == nil {
			select {
			case e := <-b.events:
				if e.Job.Kind == KindDelivery {
					event = e
				}
			case <-time.After(15 * time.Second):
				t.Fatal("no attempt in time")
			}
		}
		d, err := b.store.DeliveryGet(b.ctx, event.Job.ID)
		require.NoError(t, err)
		require.Equal(t, outbox.DeliveryRetrying, d.State)
		require.Len(t, d.Attempts, 1)
		require.Equal(t, subs[d.SubscriptionID], d.Attempts[0].ErrorClass, d.Attempts[0].Error)
		require.Zero(t, d.Attempts[0].StatusCode)
		require.NotNil(t, d.NextAttemptAt)
		require.WithinDuration(t, time.Now().Add(time.Hour), *d.NextAttemptAt, 15*time.Minute, "next attempt by the schedule, ±20 %")
	}
}

// TestFanoutJobsOfAnOlderOutboxdAreWorked: before schema version 10 the relay
// handed backlogs to fan-out jobs; jobs left queued at the upgrade are still
// worked, once.
func TestFanoutJobsOfAnOlderOutboxdAreWorked(t *testing.T) {
	t.Parallel()
	rcv := newTestReceiver(t, nil)
	b := setupDaemon(t, func(c *Config) { c.Relay.PollInterval = time.Hour }) // the relay stays out of it
	outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{URL: rcv.server.URL})

	// Claimed by an older relay: dispatched, not fanned out, in a fan-out job.
	var seqs []int64
	ids := map[string]bool{}
	for range 3 {
		e := outboxtest.Event(b.ctx, t, b.store, nil)
		seqs = append(seqs, e.Seq)
		ids[e.ID] = true
	}
	_, err := b.pool.Exec(b.ctx, "UPDATE "+b.store.Schema()+".events SET dispatched_at = now() WHERE id = ANY($1)", seqs)
	require.NoError(t, err)
	for range 2 { // twice, as a rescued job would run: the second creates nothing
		_, err = b.daemon.Client().Insert(b.ctx, FanoutArgs{EventSeqs: seqs}, nil)
		require.NoError(t, err)
	}

	b.waitFinal(t, 3)
	for range 3 {
		got := rcv.next(t)
		require.True(t, ids[got.header.Get("webhook-id")], got.header.Get("webhook-id"))
		delete(ids, got.header.Get("webhook-id"))
	}
	require.Empty(t, ids)
	deliveries, err := b.store.DeliveryList(b.ctx, nil)
	require.NoError(t, err)
	require.Len(t, deliveries, 3, "one delivery per event, however often its fan-out job ran")
}
