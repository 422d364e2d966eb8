package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/outboxtest"
)

// A daemon that may not reach a subscription's host says so once in its log;
// `deliveries list` shows why each delivery failed, `deliveries get` the whole
// error, and a delivery that got through after a failure shows no last error.
func TestDeliveriesShowWhyTheyFailed(t *testing.T) {
	t.Parallel()
	b := newProcessBundle(t)
	many := make(outbox.RetrySchedule, 30)
	for i := range many {
		many[i] = 20 * time.Millisecond
	}
	// The daemon allows 127.0.0.0/8 only: ::1 is a blocked loopback address.
	const blockedURL = "http://[::1]:9/hooks/a/path/long/enough/that/a/table/would/show/nothing/but/the/url"
	blocked := outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{
		URL: blockedURL, EventTypes: []string{"agent.step.completed"}, RetrySchedule: many,
	})
	var answers atomic.Int64
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if answers.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(flaky.Close)
	recovered := outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{
		URL: flaky.URL, EventTypes: []string{"agent.step.completed"}, RetrySchedule: many,
	})
	daemon := b.startDaemon(t, "--circuit-failures", "1000")
	outboxtest.Event(b.ctx, t, b.store, nil)

	delivery := func(sub string) *outbox.Delivery {
		list, err := b.store.DeliveryList(b.ctx, &outbox.DeliveryListParams{SubscriptionID: sub})
		require.NoError(t, err)
		if len(list) == 0 {
			return nil
		}
		return list[0]
	}
	require.Eventually(t, func() bool {
		d := delivery(blocked.ID)
		return d != nil && len(d.Attempts) >= 3
	}, 30*time.Second, 20*time.Millisecond, "the blocked delivery is refused again and again")
	require.Eventually(t, func() bool {
		d := delivery(recovered.ID)
		return d != nil && d.State == outbox.DeliveryDelivered
	}, 30*time.Second, 20*time.Millisecond)

	const why = "::1 is a loopback address; outboxd does not send webhooks there unless it is in --allow-private-targets"
	warnings := regexp.MustCompile(`level=WARN msg="delivery refused: the subscription's host is a blocked address[^"]*" component=delivery subscription_id=`+
		blocked.ID+` host=::1 address=::1 reason="loopback address"`).FindAllString(daemon.log(), -1)
	require.Len(t, warnings, 1, "one warning for attempt after attempt; the log:\n%s", daemon.log())

	res := b.cli(t, "deliveries", "list", "--subscription", blocked.ID)
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "::1 is a loopback address; outboxd does not send webhooks there unless it is in…", "the reason, not the URL")
	require.NotContains(t, res.stdout, "POST http")

	id := strconv.FormatInt(delivery(blocked.ID).ID, 10)
	res = b.cli(t, "deliveries", "get", id)
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "\n  last error: POST "+blockedURL+": "+why+"\n")
	require.Contains(t, res.stdout, "blocked_address  ")
	require.Contains(t, res.stdout, " -         "+why+"\n", "each attempt's error in full")
	require.NotContains(t, res.stdout, "…")

	res = b.cli(t, "deliveries", "get", strconv.FormatInt(delivery(recovered.ID).ID, 10), "--json")
	require.Equal(t, 0, res.code, res.stderr)
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &got))
	require.Equal(t, "delivered", got["state"])
	require.NotContains(t, got, "last_error", "delivered: no last error")
	attempts := got["attempts"].([]any)
	require.Len(t, attempts, 2, "the failed attempt is still on record")
	require.EqualValues(t, http.StatusServiceUnavailable, attempts[0].(map[string]any)["status_code"])
	res = b.cli(t, "deliveries", "list", "--subscription", recovered.ID)
	require.Equal(t, 0, res.code, res.stderr)
	require.NotContains(t, res.stdout, "503")
	require.True(t, strings.Contains(res.stdout, "delivered "), res.stdout)
}

// cli runs an outboxd command line in-process on the bundle's schema.
func (b *processBundle) cli(t *testing.T, args ...string) cliResult {
	t.Helper()
	return runCLI(t, b.cliEnv, "", args...)
}
