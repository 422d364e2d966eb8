package jobs

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/outboxtest"
)

// webhook is the body outboxd sends, as a receiver reads it.
type webhook struct {
	ID   string         `json:"id"`
	Type string         `json:"type"`
	Data map[string]any `json:"data"`
}

func decodeWebhook(t *testing.T, body []byte) webhook {
	t.Helper()
	var w webhook
	require.NoError(t, json.Unmarshal(body, &w))
	return w
}

// nextOfType returns the next webhook of eventType the receiver gets, skipping others.
func (r *testReceiver) nextOfType(t *testing.T, eventType string) webhook {
	t.Helper()
	for {
		if w := decodeWebhook(t, r.next(t).body); w.Type == eventType {
			return w
		}
	}
}

// failingReceiver answers 500 until healed, and records the ids it accepted.
type failingReceiver struct {
	*testReceiver
	healed   atomic.Bool
	mu       sync.Mutex
	accepted map[string]bool
}

func newFailingReceiver(t *testing.T, failFirst int64) *failingReceiver {
	t.Helper()
	f := &failingReceiver{accepted: map[string]bool{}}
	f.testReceiver = newTestReceiver(t, func(n int64, r *http.Request, _ []byte) reply {
		if !f.healed.Load() && (failFirst == 0 || n <= failFirst) {
			return reply{status: http.StatusInternalServerError, body: "database is down"}
		}
		f.mu.Lock()
		f.accepted[r.Header.Get("webhook-id")] = true
		f.mu.Unlock()
		return reply{}
	})
	return f
}

func (f *failingReceiver) acceptedAll(ids []string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		if !f.accepted[id] {
			return false
		}
	}
	return true
}

func TestFailingSubscriptionIsDisabledThenRecovered(t *testing.T) {
	t.Parallel()
	b := setupDaemon(t, func(c *Config) {
		c.Delivery.Circuit = outbox.CircuitPolicy{
			Threshold: 3, BackoffMin: 100 * time.Millisecond, BackoffMax: 200 * time.Millisecond, DisableAfter: 1500 * time.Millisecond,
		}
	})
	failing := newFailingReceiver(t, 0)
	operator := newTestReceiver(t, nil)
	everything := newTestReceiver(t, nil)
	many := make(outbox.RetrySchedule, 40)
	for i := range many {
		many[i] = 20 * time.Millisecond
	}
	sub := outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{
		URL: failing.server.URL, EventTypes: []string{"agent.*"}, RetrySchedule: many,
	})
	outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{URL: operator.server.URL, EventTypes: []string{"outboxd.*"}})
	outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{URL: everything.server.URL}) // "*"

	since := time.Now()
	var published []string
	for range 5 {
		published = append(published, outboxtest.Event(b.ctx, t, b.store, nil).ID)
	}

	disabled := operator.nextOfType(t, outbox.EventSubscriptionDisabled)
	require.Equal(t, sub.ID, disabled.Data["subscription_id"])
	require.Contains(t, disabled.Data["reason"], "every attempt failed since")
	require.Contains(t, disabled.Data["reason"], "500")
	got, err := b.store.SubscriptionGet(b.ctx, sub.ID)
	require.NoError(t, err)
	require.False(t, got.Enabled)
	require.Equal(t, disabled.Data["reason"], got.DisabledReason)
	// Not at the circuit's threshold, but once it had failed for the whole period.
	require.NotNil(t, got.FailingSince)
	require.NotNil(t, got.DisabledAt)
	require.GreaterOrEqual(t, got.DisabledAt.Sub(*got.FailingSince), 1500*time.Millisecond, "disabled after DisableAfter of failures")

	// Backed off, not burned: 1.5 s of 20 ms retries would be ~75 attempts per
	// delivery; the open circuit let through only the first failures and a probe
	// every 100-200 ms. Nothing died: the deliveries were cancelled with the
	// subscription, to be recovered.
	require.Less(t, failing.count.Load(), int64(30), "attempts while failing")
	deliveries, err := b.store.DeliveryList(b.ctx, &outbox.DeliveryListParams{SubscriptionID: sub.ID})
	require.NoError(t, err)
	require.Len(t, deliveries, 5)
	require.Eventually(t, func() bool {
		deliveries, err = b.store.DeliveryList(b.ctx, &outbox.DeliveryListParams{SubscriptionID: sub.ID, State: outbox.DeliveryCancelled})
		require.NoError(t, err)
		return len(deliveries) == 5
	}, 30*time.Second, 20*time.Millisecond) // each is cancelled when it next comes round

	// Fixed, and two more events while it is still disabled.
	failing.healed.Store(true)
	for range 2 {
		event := outboxtest.Event(b.ctx, t, b.store, nil)
		published = append(published, event.ID)
		require.Eventually(t, func() bool { // fanned out while disabled: no delivery for sub
			got, err := b.store.EventGet(b.ctx, event.ID)
			require.NoError(t, err)
			return got.FannedOutAt != nil
		}, 10*time.Second, 10*time.Millisecond)
	}
	enabled, err := b.store.SubscriptionEnable(b.ctx, sub.ID)
	require.NoError(t, err)
	require.True(t, enabled)
	recovery, err := b.daemon.Operations().RecoveryStart(b.ctx, sub.ID, since, time.Now().Add(time.Second))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return failing.acceptedAll(published) }, 20*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool {
		recovery, err = b.daemon.Operations().RecoveryGet(b.ctx, recovery.ID)
		require.NoError(t, err)
		return recovery.State == "completed"
	}, 10*time.Second, 20*time.Millisecond)
	require.EqualValues(t, 5, recovery.Retried, "the cancelled deliveries")
	require.EqualValues(t, 2, recovery.Created, "the events published while disabled")

	// "*" never matched outboxd's own events.
	for len(everything.requests) > 0 {
		w := decodeWebhook(t, everything.next(t).body)
		require.False(t, strings.HasPrefix(w.Type, "outboxd."), "%s reached a * subscription", w.Type)
	}
}

func TestRecoveryAndExhaustionAreAnnounced(t *testing.T) {
	t.Parallel()
	b := setupDaemon(t, func(c *Config) {
		c.Delivery.Circuit = outbox.CircuitPolicy{Threshold: 2, BackoffMin: 100 * time.Millisecond, BackoffMax: 200 * time.Millisecond}
	})
	operator := newTestReceiver(t, nil)
	outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{URL: operator.server.URL, EventTypes: []string{"outboxd.*"}})

	// Fails three times (the circuit opens at the second), then answers.
	flaky := newFailingReceiver(t, 3)
	flakySub := outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{
		URL: flaky.server.URL, EventTypes: []string{"agent.step.completed"}, RetrySchedule: outbox.RetrySchedule{10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond},
	})
	// Never answers well, and has two attempts.
	broken := newFailingReceiver(t, 0)
	brokenSub := outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{
		URL: broken.server.URL, EventTypes: []string{"agent.run.failed"}, RetrySchedule: outbox.RetrySchedule{10 * time.Millisecond},
	})

	outboxtest.Event(b.ctx, t, b.store, nil)
	lost := outboxtest.Event(b.ctx, t, b.store, &outboxtest.EventOpts{Type: "agent.run.failed"})

	var seen []string
	var recovered, exhausted webhook
	for recovered.ID == "" || exhausted.ID == "" {
		w := decodeWebhook(t, operator.next(t).body)
		seen = append(seen, w.Type)
		switch w.Type {
		case outbox.EventSubscriptionRecovered:
			recovered = w
		case outbox.EventDeliveryExhausted:
			exhausted = w
		}
	}
	require.Equal(t, flakySub.ID, recovered.Data["subscription_id"])
	require.Equal(t, brokenSub.ID, exhausted.Data["subscription_id"])
	require.Equal(t, lost.ID, exhausted.Data["event_id"])
	require.Equal(t, "agent.run.failed", exhausted.Data["event_type"])
	require.EqualValues(t, 2, exhausted.Data["attempts"])
	require.Contains(t, exhausted.Data["last_error"], "500")
	require.False(t, slices.Contains(seen, outbox.EventSubscriptionDisabled), "nothing was disabled")

	got, err := b.store.SubscriptionGet(b.ctx, flakySub.ID)
	require.NoError(t, err)
	require.Zero(t, got.FailureStreak)
	require.Nil(t, got.CircuitOpenUntil)
}

// closedPort is a loopback port that refuses connections until open is called:
// its socket is bound, so nothing else can take the port meanwhile, but does not
// listen yet.
type closedPort struct {
	fd   int
	Addr string
}

func newClosedPort(t *testing.T) *closedPort {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	require.NoError(t, syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	sa, err := syscall.Getsockname(fd)
	require.NoError(t, err)
	p := &closedPort{fd: fd, Addr: fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)}
	t.Cleanup(func() { _ = syscall.Close(fd) }) // after open, closing the listener closed it: harmless
	return p
}

// open starts listening and returns the listener.
func (p *closedPort) open(t *testing.T) net.Listener {
	t.Helper()
	require.NoError(t, syscall.Listen(p.fd, 1024))
	fd, err := syscall.Dup(p.fd)
	require.NoError(t, err)
	file := os.NewFile(uintptr(fd), "listener")
	defer file.Close()
	listener, err := net.FileListener(file)
	require.NoError(t, err)
	return listener
}

// The scenario: a receiver that is down for two seconds while a hundred
// deliveries are due. Their first attempts fail together; only the first
// Threshold of them count, the circuit opens for BackoffMin, and the failures of
// the attempts already in flight do not lengthen its wait, so the receiver gets
// its first delivery seconds after it comes up, not minutes.
func TestCircuitWaitIgnoresAttemptsAlreadyInFlight(t *testing.T) {
	t.Parallel()
	policy := outbox.CircuitPolicy{Threshold: CircuitThresholdDefault, BackoffMin: CircuitBackoffMinDefault, BackoffMax: CircuitBackoffMaxDefault}
	b := setupDaemon(t, func(c *Config) { c.Delivery.Circuit = policy })
	port := newClosedPort(t)
	sub := outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{URL: "http://" + port.Addr + "/hooks"}) // the default retry schedule
	const events = 100
	for range events {
		outboxtest.Event(b.ctx, t, b.store, nil)
	}

	// The circuit opens, and every attempt that was in flight then has failed.
	var opened *outbox.Subscription
	require.Eventually(t, func() bool {
		got, err := b.store.SubscriptionGet(b.ctx, sub.ID)
		require.NoError(t, err)
		opened = got
		return got.CircuitOpenUntil != nil
	}, 20*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		list, err := b.store.DeliveryList(b.ctx, &outbox.DeliveryListParams{SubscriptionID: sub.ID, State: outbox.DeliveryDelivering})
		require.NoError(t, err)
		return len(list) == 0
	}, 20*time.Second, 10*time.Millisecond)
	settled, err := b.store.SubscriptionGet(b.ctx, sub.ID)
	require.NoError(t, err)
	require.NotNil(t, settled.CircuitOpenUntil)
	require.Equal(t, *opened.CircuitOpenUntil, *settled.CircuitOpenUntil, "failures of attempts in flight left the wait alone")
	require.Equal(t, policy.Threshold, settled.FailureStreak, "failures counted: the ones that opened the circuit")
	require.LessOrEqual(t, time.Until(*settled.CircuitOpenUntil), policy.BackoffMin, "the first wait")

	// The receiver comes up.
	rcv := &testReceiver{requests: make(chan received, 10_000)}
	server := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rcv.count.Add(1)
		rcv.requests <- received{header: r.Header.Clone(), body: body}
		w.WriteHeader(http.StatusNoContent)
	}))
	server.Listener = port.open(t)
	server.Start()
	t.Cleanup(server.Close)
	up := time.Now()

	// Watch the circuit until everything is delivered: its wait never grows past
	// a couple of failed probes.
	var longest atomic.Int64
	watching, stopWatching := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watching)
		for {
			select {
			case <-stopWatching:
				return
			case <-time.After(20 * time.Millisecond):
			}
			got, err := b.store.SubscriptionGet(b.ctx, sub.ID)
			if err == nil && got.CircuitOpenUntil != nil {
				if wait := int64(time.Until(*got.CircuitOpenUntil)); wait > longest.Load() {
					longest.Store(wait)
				}
			}
		}
	}()

	first := rcv.next(t)
	require.NotEmpty(t, first.header.Get("webhook-id"))
	firstAfter := time.Since(up)
	require.Less(t, firstAfter, 15*time.Second, "first delivery after the receiver came up")
	require.Eventually(t, func() bool {
		list, err := b.store.DeliveryList(b.ctx, &outbox.DeliveryListParams{SubscriptionID: sub.ID, State: outbox.DeliveryDelivered})
		require.NoError(t, err)
		return len(list) == events
	}, 60*time.Second, 50*time.Millisecond)
	close(stopWatching)
	<-watching
	require.LessOrEqual(t, time.Duration(longest.Load()), 4*policy.BackoffMin, "longest wait of the circuit")
	got, err := b.store.SubscriptionGet(b.ctx, sub.ID)
	require.NoError(t, err)
	require.Zero(t, got.FailureStreak)
	require.Nil(t, got.CircuitOpenUntil)
	t.Logf("first delivery %s after the receiver came up, all %d within %s; longest wait %s",
		firstAfter.Round(time.Millisecond), events, time.Since(up).Round(time.Millisecond), time.Duration(longest.Load()).Round(time.Millisecond))
}
