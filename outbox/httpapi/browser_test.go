package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox/browsertest"
)

// riverUIShows waits until the River UI has rendered its job list with text in
// it: the page, its scripts, and its API calls all got through.
func riverUIShows(text string) chromedp.Action[bool] {
	return chromedp.Poll[bool](`document.body && document.body.innerText.includes(`+jsString(text)+`)`, chromedp.WithPollingTimeout(30*time.Second))
}

func jsString(s string) string {
	quoted, _ := json.Marshal(s)
	return string(quoted)
}

// requireShown fails with what the page says when waiting for it failed.
func requireShown(t *testing.T, ctx context.Context, err error) {
	t.Helper()
	if err != nil {
		location, _ := chromedp.Run(ctx, chromedp.Location())
		text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		t.Fatalf("the page did not show what was expected: %v\nat %s it says:\n%s", err, location, text)
	}
}

// publishDelivered makes one delivered delivery, for the River UI to list.
func publishDelivered(t *testing.T, b *apiBundle) {
	t.Helper()
	rcv := newReceiver(t, http.StatusNoContent)
	b.createSubscription(t, map[string]any{"url": rcv.server.URL})
	require.Equal(t, http.StatusCreated, b.admin(t, "POST", "/v1/events", map[string]any{"type": "agent.step.completed"}).status)
	b.waitFinal(t, 1)
}

// The issue: Chromium showed the JSON 401 and never asked for credentials,
// because Bearer and Basic came on one WWW-Authenticate line. Answering the
// prompt the way a person would, the River UI now opens with basic auth.
func TestRiverUIOpensInChromiumWithBasicAuth(t *testing.T) {
	t.Parallel()
	b := setup(t)
	publishDelivered(t, b)

	ctx := browsertest.New(t, 90*time.Second)
	challenges := browsertest.AnswerAuthChallenges(t, ctx, "admin", adminToken)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(b.server.URL+"/riverui/jobs?state=completed")))
	_, err := chromedp.Run(ctx, riverUIShows("outboxd.delivery"))
	requireShown(t, ctx, err)
	require.Equal(t, []string{"basic"}, challenges.Schemes(), "the browser asked once, for basic auth")
}
