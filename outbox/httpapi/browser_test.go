package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox/browsertest"
	"github.com/outboxd/outboxd/outbox/httpapi"
	"github.com/outboxd/outboxd/outbox/outboxtest"
)

// screenshotPath is where TestRiverUISignInFormInChromium saves the signed-in
// River UI when OUTBOXD_UPDATE_SCREENSHOTS=1, for the README.
const screenshotPath = "../../docs/img/riverui-login.png"

// shows is a predicate: the page's text includes text.
func shows(text string) string {
	return `document.body !== null && document.body.innerText.includes(` + jsString(text) + `)`
}

// at is a predicate: the tab's address is on pathAndQuery.
func at(pathAndQuery string) string {
	return `location.pathname + location.search === ` + jsString(pathAndQuery)
}

func jsString(s string) string {
	quoted, _ := json.Marshal(s)
	return string(quoted)
}

// wait polls a JavaScript predicate until it holds, through navigations (which
// replace the page it runs in), and fails with what the page says if it does
// not within 30 seconds.
func wait(t *testing.T, ctx context.Context, what, predicate string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		var ok bool
		if ok, err = chromedp.Run(ctx, chromedp.Evaluate[bool](predicate)); err == nil && ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	location, _ := chromedp.Run(ctx, chromedp.Location())
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	t.Fatalf("waiting for %s (last error: %v)\nat %s the page says:\n%s", what, err, location, text)
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
// because Bearer and Basic came on one WWW-Authenticate line. Following the
// sign-in page's link to the browser's own prompt, and answering it as a
// person would, the River UI now opens with basic auth.
func TestRiverUIOpensInChromiumWithBasicAuth(t *testing.T) {
	t.Parallel()
	b := setup(t)
	publishDelivered(t, b)

	ctx := browsertest.New(t, 90*time.Second)
	challenges := browsertest.AnswerAuthChallenges(t, ctx, "admin", adminToken)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(b.server.URL+"/riverui/jobs?state=completed")))
	wait(t, ctx, "the sign-in page", at("/login?next="+url.QueryEscape("/riverui/jobs?state=completed")))
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.ID("basic"))))
	wait(t, ctx, "the River UI's jobs", shows("outboxd.delivery"))
	require.Equal(t, []string{"basic"}, challenges.Schemes(), "the browser asked once, for basic auth")
}

// A way in that needs no prompt at all: the sign-in form starts a session whose
// cookie (HttpOnly, SameSite=Strict) opens the River UI and its API, until the
// operator signs out.
func TestRiverUISignInFormInChromium(t *testing.T) {
	t.Parallel()
	b := setup(t)
	publishDelivered(t, b)

	ctx := browsertest.New(t, 90*time.Second)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(b.server.URL+"/riverui/jobs?state=completed")))
	wait(t, ctx, "the sign-in page", at("/login?next="+url.QueryEscape("/riverui/jobs?state=completed")))

	// A wrong token: the form says so and nothing opens.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("token"), "not-the-token-0123456789"),
		chromedp.Click(chromedp.ID("sign-in")),
	))
	wait(t, ctx, "the refusal", shows("That is not a valid admin token."))

	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("token"), adminToken), // the form comes back empty
		chromedp.Click(chromedp.ID("sign-in")),
	))
	wait(t, ctx, "the River UI at the page asked for", at("/riverui/jobs?state=completed"))
	wait(t, ctx, "the River UI's jobs, through its API", shows("outboxd.delivery"))

	cookies, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{b.server.URL}})
	require.NoError(t, err)
	require.Len(t, cookies.Cookies, 1)
	cookie := cookies.Cookies[0]
	require.Equal(t, httpapi.SessionCookie, cookie.Name)
	require.True(t, cookie.HTTPOnly)
	require.Equal(t, network.CookieSameSiteStrict, cookie.SameSite)
	require.Equal(t, "/", cookie.Path)
	require.False(t, cookie.Secure, "plain HTTP here; over TLS the cookie is Secure")
	script, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.cookie`))
	require.NoError(t, err)
	require.Empty(t, script, "page scripts cannot read the session")

	// The River UI's own writes still work: same origin, with the cookie, and
	// (as the River UI sends them) without a JSON content type.
	job, err := chromedp.Run(ctx, chromedp.Evaluate[string](`fetch("/riverui/api/jobs?state=completed&kinds=outboxd.delivery")
		.then(r => r.json()).then(page => String(page.data[0].id))`, chromedp.EvalAwaitPromise))
	require.NoError(t, err)
	retried, err := chromedp.Run(ctx, chromedp.Evaluate[int](`fetch("/riverui/api/jobs/retry", {method: "POST", body: JSON.stringify({ids: [`+jsString(job)+`]})})
		.then(r => r.status)`, chromedp.EvalAwaitPromise))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, retried)
	b.waitFinal(t, 1)

	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	require.NoError(t, err)
	img, err := png.Decode(bytes.NewReader(shot))
	require.NoError(t, err)
	require.Equal(t, 1280, img.Bounds().Dx())
	require.NoError(t, os.WriteFile(filepath.Join(t.ArtifactDir(), "riverui-login.png"), shot, 0o600))
	if os.Getenv("OUTBOXD_UPDATE_SCREENSHOTS") == "1" {
		require.NoError(t, os.WriteFile(screenshotPath, shot, 0o644)) //nolint:gosec // a public image
	}

	// Signing out ends the session: the River UI asks to sign in again.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(b.server.URL+"/login")))
	wait(t, ctx, "the signed-in page", shows("You are signed in"))
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.ID("sign-out"))))
	wait(t, ctx, "the sign-in form", at("/login"))
	wait(t, ctx, "the sign-in form", shows("Sign in to the River UI"))
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(b.server.URL+"/riverui/")))
	wait(t, ctx, "the sign-in page", at("/login?next=%2Friverui%2F"))
	require.Zero(t, liveSessions(t, b))
	require.False(t, strings.Contains(b.logs.String(), adminToken))
}

func liveSessions(t *testing.T, b *apiBundle) int {
	t.Helper()
	var n int
	require.NoError(t, outboxtest.Pool(t).QueryRow(b.ctx, "SELECT count(*) FROM "+b.store.Schema()+".web_sessions WHERE revoked_at IS NULL").Scan(&n))
	return n
}
