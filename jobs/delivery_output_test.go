package jobs

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/netguard"
	"github.com/outboxd/outboxd/outbox/outboxtest"
)

// A delivery that failed before it got through is delivered, with no last
// error; its attempt log still shows the failure.
func TestDeliveredDeliveryHasNoLastError(t *testing.T) {
	t.Parallel()
	b := setupDaemon(t, nil)
	flaky := newFailingReceiver(t, 1)
	outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{
		URL: flaky.server.URL, EventTypes: []string{"agent.step.completed"}, RetrySchedule: outbox.RetrySchedule{10 * time.Millisecond},
	})
	broken := newFailingReceiver(t, 0)
	outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{
		URL: broken.server.URL, EventTypes: []string{"agent.step.completed"}, RetrySchedule: outbox.RetrySchedule{10 * time.Millisecond},
	})
	event := outboxtest.Event(b.ctx, t, b.store, nil)
	b.waitFinal(t, 2)

	deliveries, err := b.store.DeliveryList(b.ctx, &outbox.DeliveryListParams{EventID: event.ID})
	require.NoError(t, err)
	require.Len(t, deliveries, 2)
	for _, d := range deliveries {
		require.Len(t, d.Attempts, 2)
		require.Equal(t, http.StatusInternalServerError, d.Attempts[0].StatusCode, "the first attempt failed")
		require.Equal(t, outbox.ErrorClassHTTPStatus, d.Attempts[0].ErrorClass)
		switch d.State {
		case outbox.DeliveryDelivered:
			require.Empty(t, d.LastError)
			require.Equal(t, http.StatusNoContent, d.Attempts[1].StatusCode)
		case outbox.DeliveryDead:
			require.Equal(t, "POST "+broken.server.URL+": receiver answered 500 Internal Server Error", d.LastError)
		default:
			t.Fatalf("delivery %d is %s", d.ID, d.State)
		}
	}
}

// Errors name the method and URL once, and say what went wrong in a few words.
func TestRequestErrorsAreShortAndSayWhy(t *testing.T) {
	t.Parallel()
	hanging := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-hanging }))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(hanging) })
	refused := newClosedPort(t)

	for _, c := range []struct {
		name  string
		guard *netguard.Guard
		url   string
		class string
		want  string
	}{
		{"Blocked", &netguard.Guard{}, "http://127.0.0.1:8080/hooks", outbox.ErrorClassBlocked,
			"127.0.0.1 is a loopback address; outboxd does not send webhooks there unless it is in --allow-private-targets"},
		{"BlockedName", &netguard.Guard{}, "http://localhost:8080/hooks", outbox.ErrorClassBlocked,
			"localhost (127.0.0.1) is a loopback address; outboxd does not send webhooks there unless it is in --allow-private-targets"},
		{"Refused", outboxtest.LoopbackGuard(), "http://" + refused.Addr + "/hooks", outbox.ErrorClassConnection,
			"dial tcp " + refused.Addr + ": connect: connection refused"},
		{"Timeout", outboxtest.LoopbackGuard(), slow.URL, outbox.ErrorClassTimeout,
			"no complete response within 200ms (the request timeout)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			client := netguard.NewClient(c.guard, &netguard.ClientConfig{Timeout: 200 * time.Millisecond})
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, c.url, strings.NewReader("{}"))
			require.NoError(t, err)
			_, err = client.Do(req) //nolint:bodyclose // no response
			require.Error(t, err)
			require.Equal(t, c.class, classifyError(context.Background(), err))
			require.Equal(t, c.want, describeRequestError(err, 200*time.Millisecond))
		})
	}
}

// A daemon that refuses a subscription's deliveries because its host is a
// blocked address says so at once, once per subscription, naming the host and
// why, and never a header value or the URL's query.
func TestBlockedDeliveriesAreReportedOncePerSubscription(t *testing.T) {
	t.Parallel()
	logs := newLogRecorder()
	b := setupDaemon(t, func(c *Config) {
		c.Guard = &netguard.Guard{} // loopback is blocked here, though the store let the URLs in
		c.Logger = slog.New(logs)
		c.Delivery.Circuit.Threshold = 1_000_000 // attempt after attempt is refused
	})
	many := make(outbox.RetrySchedule, 20)
	for i := range many {
		many[i] = 10 * time.Millisecond
	}
	var subs []*outbox.SubscriptionCreateResult
	for _, host := range []string{"127.0.0.1", "localhost"} {
		subs = append(subs, outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{
			URL:           "http://" + host + ":9/hooks?token=query-secret-value",
			Headers:       map[string]string{"Authorization": "Bearer header-secret-value"},
			RetrySchedule: many,
		}))
	}
	for range 3 {
		outboxtest.Event(b.ctx, t, b.store, nil)
	}

	// Every delivery is refused again and again.
	for _, sub := range subs {
		require.Eventually(t, func() bool {
			list, err := b.store.DeliveryList(b.ctx, &outbox.DeliveryListParams{SubscriptionID: sub.ID})
			require.NoError(t, err)
			refused := 0
			for _, d := range list {
				if len(d.Attempts) >= 2 {
					refused++
				}
			}
			return refused == 3
		}, 20*time.Second, 10*time.Millisecond)
	}
	warnings := logs.records(func(r loggedRecord) bool { return strings.Contains(r.Message, "blocked address") })
	require.Len(t, warnings, 2, summary(warnings))
	bySub := map[string]loggedRecord{}
	for _, w := range warnings {
		require.Equal(t, slog.LevelWarn, w.Level)
		bySub[w.Attrs["subscription_id"]] = w
	}
	require.Equal(t, "127.0.0.1", bySub[subs[0].ID].Attrs["host"])
	require.Equal(t, "localhost", bySub[subs[1].ID].Attrs["host"])
	for _, sub := range subs {
		require.Equal(t, "127.0.0.1", bySub[sub.ID].Attrs["address"])
		require.Equal(t, "loopback address", bySub[sub.ID].Attrs["reason"])
	}
	text := logs.text()
	require.NotContains(t, text, "header-secret-value")
	require.NotContains(t, text, "query-secret-value")

	list, err := b.store.DeliveryList(b.ctx, &outbox.DeliveryListParams{SubscriptionID: subs[0].ID})
	require.NoError(t, err)
	d := list[0]
	require.Equal(t, "POST http://127.0.0.1:9/hooks?token=query-secret-value: 127.0.0.1 is a loopback address; "+
		"outboxd does not send webhooks there unless it is in --allow-private-targets", d.LastError)
	require.Equal(t, outbox.ErrorClassBlocked, d.Attempts[0].ErrorClass)
	require.Equal(t, "127.0.0.1 is a loopback address; outboxd does not send webhooks there unless it is in --allow-private-targets", d.Attempts[0].Error)
}

func TestLogLimiter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	l := newLogLimiter(time.Minute, func() time.Time { return now })
	held, ok := l.allow("sub_a")
	require.True(t, ok, "the first time")
	require.Zero(t, held)
	for range 3 {
		_, ok = l.allow("sub_a")
		require.False(t, ok)
	}
	_, ok = l.allow("sub_b")
	require.True(t, ok, "each key on its own")
	now = now.Add(time.Minute)
	held, ok = l.allow("sub_a")
	require.True(t, ok, "once the interval has passed")
	require.Equal(t, 3, held)
}
