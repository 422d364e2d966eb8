package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox/browsertest"
	"github.com/outboxd/outboxd/outbox/httpapi"
)

// portalLink asks the API for a portal link, as a SaaS backend would.
func (b *apiBundle) portalLink(t *testing.T, body map[string]any) string {
	t.Helper()
	r := b.admin(t, "POST", "/v1/portal/sessions", body)
	require.Equal(t, http.StatusCreated, r.status, r.raw)
	link := r.str("url")
	require.True(t, strings.HasPrefix(link, b.server.URL+httpapi.PortalOpenPath+"?token=obxl_"), link)
	return link
}

// text is the page's visible text.
func text(t *testing.T, ctx context.Context) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	require.NoError(t, err)
	return s
}

// reloadUntil reloads the page until predicate holds: pages without
// JavaScript show new state on the next load.
func reloadUntil(t *testing.T, ctx context.Context, what, predicate string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](predicate)); err == nil && ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
		require.NoError(t, chromedp.Do(ctx, chromedp.Reload()))
	}
	t.Fatalf("waiting for %s; the page says:\n%s", what, text(t, ctx))
}

// cookieClient is a Go client holding the tab's portal cookie, to see the
// status codes the browser got.
func cookieClient(t *testing.T, ctx context.Context, b *apiBundle) func(path string) int {
	t.Helper()
	cookies, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{b.server.URL}})
	require.NoError(t, err)
	var value string
	for _, c := range cookies.Cookies {
		if c.Name == httpapi.PortalCookie {
			value = c.Value
		}
	}
	require.NotEmpty(t, value)
	return func(path string) int {
		req, err := http.NewRequestWithContext(context.Background(), "GET", b.server.URL+path, nil)
		require.NoError(t, err)
		req.AddCookie(&http.Cookie{Name: httpapi.PortalCookie, Value: value})
		resp, err := b.server.Client().Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
}

// screenshot saves the tab's page for the test's artifacts and, with
// OUTBOXD_UPDATE_SCREENSHOTS=1, for docs/portal.md.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(t.ArtifactDir(), name), shot, 0o600))
	if os.Getenv("OUTBOXD_UPDATE_SCREENSHOTS") == "1" {
		require.NoError(t, os.WriteFile(filepath.Join("../../docs/img", name), shot, 0o644)) //nolint:gosec // a public image
	}
}

// The story in a real browser: a portal link opens once into a session
// cookie; the tenant creates an endpoint, copies its secret (shown once), sends
// a test, watches a delivery fail against a receiver answering 500, fixes the
// receiver, retries, and sees it delivered. Another organization's endpoint and
// delivery answer 404, as through the API.
func TestPortalInChromium(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rcv := newReceiver(t, http.StatusInternalServerError)

	// Another organization's endpoint and delivery, which org-a must not see.
	other := b.createSubscription(t, map[string]any{"url": newReceiver(t, http.StatusNoContent).server.URL, "organization_id": "org-b"})
	require.Equal(t, http.StatusCreated, b.admin(t, "POST", "/v1/events", map[string]any{"type": "agent.step.completed", "organization_id": "org-b"}).status)
	otherDelivery := int64(b.waitFinal(t, 1)[0].ID)

	link := b.portalLink(t, map[string]any{"organization_id": "org-a", "expires_in": "1h"})
	ctx := browsertest.New(t, 3*time.Minute)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(link)))
	wait(t, ctx, "the portal's endpoints, with the token gone from the address bar", at("/portal/endpoints"))
	wait(t, ctx, "the organization", shows("org-a"))
	wait(t, ctx, "no endpoint yet", shows("No endpoints yet"))

	cookies, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{b.server.URL}})
	require.NoError(t, err)
	require.Len(t, cookies.Cookies, 1)
	cookie := cookies.Cookies[0]
	require.Equal(t, httpapi.PortalCookie, cookie.Name)
	require.True(t, cookie.HTTPOnly)
	require.Equal(t, network.CookieSameSiteStrict, cookie.SameSite)
	require.False(t, cookie.Secure, "plain HTTP here; over TLS the cookie is Secure")
	history, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href`))
	require.NoError(t, err)
	require.NotContains(t, history, "obxl_")

	// Create an endpoint; a bad URL first is refused with the API's message.
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.ID("new-endpoint"))))
	wait(t, ctx, "the form", at("/portal/endpoints/new"))
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("url"), "http://user:pass@"+strings.TrimPrefix(rcv.server.URL, "http://")),
		chromedp.Click(chromedp.ID("create")),
	))
	wait(t, ctx, "the refusal", `document.getElementById("form-error") !== null`)
	require.Contains(t, text(t, ctx), "url")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("url"), rcv.server.URL),
		chromedp.SetValue(chromedp.ID("description"), "Order service"),
		chromedp.SetValue(chromedp.ID("headers"), "X-Api-Key: very-secret-header-value"),
		chromedp.Click(chromedp.ID("create")),
	))
	wait(t, ctx, "the secret, once", shows("This is the only time the secret is shown"))
	secret, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("secret").textContent`))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(secret, "whsec_"), secret)
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.ID("copy"))))
	wait(t, ctx, "the copy button's confirmation", `document.getElementById("copy").textContent === "Copied"`)
	screenshot(t, ctx, "portal-secret.png")

	subs := b.admin(t, "GET", "/v1/subscriptions?organization_id=org-a", nil).list()
	require.Len(t, subs, 1)
	subID, _ := subs[0]["id"].(string)
	// A long retry schedule, so that the retry button is what delivers it.
	require.Equal(t, http.StatusOK, b.admin(t, "PATCH", "/v1/subscriptions/"+subID, map[string]any{"retry_schedule": []string{"1h"}}).status)

	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.ID("endpoint-link"))))
	wait(t, ctx, "the endpoint page", at("/portal/endpoints/"+subID))
	require.NotContains(t, text(t, ctx), secret, "the secret is not shown again")
	require.NotContains(t, text(t, ctx), "very-secret-header-value", "header values are write-only")

	// A test send against the failing receiver shows its answer.
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.ID("send-test"))))
	wait(t, ctx, "the test's result", `document.getElementById("test-result") !== null`)
	require.Contains(t, text(t, ctx), "Test event failed")
	require.Contains(t, text(t, ctx), "500")
	got := <-rcv.got
	require.Equal(t, "very-secret-header-value", got.Header.Get("X-Api-Key"))
	<-rcv.bodies

	// A real event fails against the receiver.
	require.Equal(t, http.StatusCreated, b.admin(t, "POST", "/v1/events", map[string]any{"type": "agent.step.completed", "organization_id": "org-a", "payload": map[string]any{"step_id": "step-1"}}).status)
	<-rcv.got
	sent := <-rcv.bodies
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(b.server.URL+"/portal/deliveries?endpoint="+subID)))
	reloadUntil(t, ctx, "the failed delivery", `document.querySelector("#deliveries tr[data-state=retrying]") !== null`)
	screenshot(t, ctx, "portal-deliveries.png")
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#deliveries tbody a`))))
	wait(t, ctx, "the delivery", shows("Attempt 1"))
	page := text(t, ctx)
	require.Contains(t, page, "500")
	require.Contains(t, page, "http_status")
	require.NotContains(t, page, secret)
	require.NotContains(t, page, "very-secret-header-value")
	shown, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("request-body").textContent`))
	require.NoError(t, err)
	var compact bytes.Buffer
	require.NoError(t, json.Compact(&compact, []byte(shown)))
	require.Equal(t, string(sent), compact.String(), "the page shows the body that was sent")

	// Fix the receiver, retry, and see it delivered.
	rcv.status.Store(http.StatusNoContent)
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.ID("retry"))))
	wait(t, ctx, "the retry's confirmation", shows("Retry queued"))
	reloadUntil(t, ctx, "the delivery delivered", `document.getElementById("delivery-state").textContent === "delivered"`)
	screenshot(t, ctx, "portal-delivery.png")

	// The endpoint's page counts it, and its chart has a bar.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(b.server.URL+"/portal/endpoints/"+subID)))
	wait(t, ctx, "the endpoint", shows("Last 24 hours"))
	bars, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#chart rect.ok").length`))
	require.NoError(t, err)
	require.Equal(t, 1, bars)
	require.Contains(t, text(t, ctx), "100.0 %")
	screenshot(t, ctx, "portal-endpoint.png")
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(b.server.URL+"/portal/endpoints")))
	wait(t, ctx, "the list", shows("Order service"))
	screenshot(t, ctx, "portal-endpoints.png")

	// The event catalog says when the organization last saw a type.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(b.server.URL+"/portal/events")))
	wait(t, ctx, "the catalog", shows("Event catalog"))
	seen, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("type-agent.step.completed").innerText`))
	require.NoError(t, err)
	require.Contains(t, seen, "Last seen: 20")
	never, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("type-agent.job.completed").innerText`))
	require.NoError(t, err)
	require.Contains(t, never, "not in the last 7 days")

	// Another organization's endpoint and delivery: 404, as through the API.
	status := cookieClient(t, ctx, b)
	otherID := other.str("id")
	require.Equal(t, http.StatusNotFound, status("/portal/endpoints/"+otherID))
	require.Equal(t, http.StatusNotFound, status("/portal/deliveries/"+strconv.FormatInt(otherDelivery, 10)))
	require.Equal(t, http.StatusOK, status("/portal/endpoints/"+subID))
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(b.server.URL+"/portal/endpoints/"+otherID)))
	wait(t, ctx, "the 404", shows("Not found"))
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(b.server.URL+"/portal/deliveries")))
	wait(t, ctx, "the log", shows("Deliveries"))
	require.NotContains(t, text(t, ctx), otherID)
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#deliveries tbody tr").length`))
	require.NoError(t, err)
	require.Equal(t, 1, rows, "only org-a's delivery (the test send is not stored)")

	// Signing out ends the session.
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.ID("sign-out"))))
	wait(t, ctx, "signed out", shows("You are signed out"))
	require.Equal(t, http.StatusUnauthorized, status("/portal/endpoints"))
}

// A portal link opens once: a second browser opening it is refused, and so is
// the API's answer for a revoked or unknown one.
func TestPortalLinkOpensOnceInChromium(t *testing.T) {
	t.Parallel()
	b := setup(t)
	link := b.portalLink(t, map[string]any{"organization_id": "org-a", "agent_id": "agent-7"})

	first := browsertest.New(t, time.Minute)
	require.NoError(t, chromedp.Do(first, chromedp.Navigate(link)))
	wait(t, first, "the portal", at("/portal/endpoints"))
	wait(t, first, "the agent it is narrowed to", shows("agent-7"))

	second := browsertest.New(t, time.Minute)
	require.NoError(t, chromedp.Do(second, chromedp.Navigate(link)))
	wait(t, second, "the refusal", shows("This portal link does not open"))
	require.NoError(t, chromedp.Do(second, chromedp.Navigate(b.server.URL+"/portal/endpoints")))
	wait(t, second, "not signed in", shows("You are not signed in to the portal"))

	resp, err := b.server.Client().Get(link)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)

	// Revoking the session signs the first browser out.
	sessions := b.admin(t, "GET", "/v1/portal/sessions?organization_id=org-a", nil).list()
	require.Len(t, sessions, 1)
	id, _ := sessions[0]["id"].(string)
	require.Equal(t, "open", sessions[0]["state"])
	require.Equal(t, http.StatusOK, b.admin(t, "DELETE", "/v1/portal/sessions/"+id, nil).status)
	require.NoError(t, chromedp.Do(first, chromedp.Reload()))
	wait(t, first, "signed out by the revocation", shows("You are not signed in to the portal"))
}

// The console: an operator signed in at /login sees every organization's
// endpoints and the system's health; the pages fit a 360 px wide screen.
func TestConsoleInChromium(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, org := range []string{"org-a", "org-b"} {
		b.createSubscription(t, map[string]any{"url": newReceiver(t, http.StatusNoContent).server.URL, "organization_id": org, "description": "endpoint of " + org})
	}
	failing := b.createSubscription(t, map[string]any{"url": newReceiver(t, http.StatusGone).server.URL, "organization_id": "org-c"})
	require.Equal(t, http.StatusCreated, b.admin(t, "POST", "/v1/events", map[string]any{"type": "agent.run.completed", "organization_id": "org-c"}).status)
	b.waitFinal(t, 1)

	ctx := browsertest.New(t, 2*time.Minute)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(b.server.URL+"/console/")))
	wait(t, ctx, "the sign-in page", at("/login?next=%2Fconsole%2F"))
	require.NoError(t, chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("token"), adminToken), chromedp.Click(chromedp.ID("sign-in"))))
	wait(t, ctx, "the console", at("/console/"))
	wait(t, ctx, "the health", shows("Relay backlog"))
	// The page fills in section by section: wait for each rather than read it
	// half drawn.
	wait(t, ctx, "the daemons", shows("Daemons"))
	wait(t, ctx, "the troubled endpoints", `document.getElementById("troubled") !== null && document.getElementById("troubled").innerText.includes("org-c")`)
	troubled, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("troubled").innerText`))
	require.NoError(t, err)
	require.Contains(t, troubled, "org-c", "the endpoint a 410 disabled")
	require.Contains(t, troubled, "disabled")
	screenshot(t, ctx, "console.png")

	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(b.server.URL+"/console/endpoints")))
	wait(t, ctx, "every organization's endpoints", shows("endpoint of org-b"))
	require.Contains(t, text(t, ctx), "endpoint of org-a")
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(b.server.URL+"/console/endpoints/"+failing.str("id"))))
	wait(t, ctx, "the endpoint", shows("disabled"))

	// 360 px wide: nothing sticks out sideways but the tables' own scrollers.
	_, err = chromedp.Call(ctx, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{Width: 360, Height: 740, DeviceScaleFactor: 1, Mobile: true})
	require.NoError(t, err)
	for _, path := range []string{"/console/", "/console/endpoints", "/console/deliveries", "/console/events", "/console/endpoints/" + failing.str("id")} {
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(b.server.URL+path)))
		wait(t, ctx, path, `document.readyState === "complete"`)
		width, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
		require.NoError(t, err)
		require.LessOrEqual(t, width, 360, "%s is %d px wide at 360", path, width)
	}
	screenshot(t, ctx, "console-360.png")

	// Forms need the session's CSRF token, not just its cookie.
	cookies, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{b.server.URL}})
	require.NoError(t, err)
	form := url.Values{"csrf": {"forged"}}
	req, err := http.NewRequestWithContext(context.Background(), "POST", b.server.URL+"/console/endpoints/"+failing.str("id")+"/enable", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: cookies.Cookies[0].Name, Value: cookies.Cookies[0].Value})
	resp, err := b.server.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Equal(t, false, b.admin(t, "GET", "/v1/subscriptions/"+failing.str("id"), nil).body["enabled"], fmt.Sprint("a forged form changes nothing"))
}

// acceptDialogs makes the tab answer OK to every confirm() (the portal asks
// before disabling an endpoint or rotating its secret), as a person would.
func acceptDialogs(t *testing.T, ctx context.Context) {
	t.Helper()
	// Open the tab first: listening on a context whose tab is not open yet would
	// open it from this goroutine while the test's first action opens it too.
	require.NoError(t, chromedp.Do(ctx))
	go func() {
		for _, err := range chromedp.Events(ctx, cdppage.JavascriptDialogOpening) {
			if err != nil {
				return
			}
			go func() {
				_, _ = chromedp.Call(ctx, cdppage.HandleJavaScriptDialog, cdppage.HandleJavaScriptDialogParams{Accept: true})
			}()
		}
	}()
}

// The endpoint page's other actions, each checked through the API: edit the
// settings (bad input refused with the field named), disable and enable,
// rotate the secret with a grace period, and recover a dead delivery with the
// recovery's progress page.
func TestPortalEndpointActionsInChromium(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.createSubscription(t, map[string]any{"url": newReceiver(t, http.StatusNoContent).server.URL, "organization_id": "org-a"})
	failing := newReceiver(t, http.StatusServiceUnavailable)
	dead := b.createSubscription(t, map[string]any{"url": failing.server.URL, "organization_id": "org-a", "retry_schedule": []string{}})
	require.Equal(t, http.StatusCreated, b.admin(t, "POST", "/v1/events", map[string]any{"type": "agent.run.completed", "organization_id": "org-a"}).status)
	b.waitFinal(t, 2)

	ctx := browsertest.New(t, 3*time.Minute)
	acceptDialogs(t, ctx)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(b.portalLink(t, map[string]any{"organization_id": "org-a"}))))
	wait(t, ctx, "the portal", at("/portal/endpoints"))
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(b.server.URL+"/portal/endpoints/"+sub.str("id"))))
	wait(t, ctx, "the endpoint", shows("Settings"))

	// Edit: a bad rate limit is refused and changes nothing; then a good edit.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("edit-event-types"), "agent.step.*, agent.run.completed"),
		chromedp.SetValue(chromedp.ID("edit-rate-limit"), "-3"),
		chromedp.Click(chromedp.ID("save")),
	))
	wait(t, ctx, "the refusal", `document.getElementById("form-error") !== null`)
	require.Contains(t, text(t, ctx), "rate_limit")
	require.Equal(t, []any{"*"}, b.admin(t, "GET", "/v1/subscriptions/"+sub.str("id"), nil).body["event_types"])
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("edit-event-types"), "agent.step.*, agent.run.completed"),
		chromedp.SetValue(chromedp.ID("edit-rate-limit"), "5"),
		chromedp.SetValue(chromedp.ID("edit-headers"), "X-Token: abc123"),
		chromedp.SetValue(chromedp.ID("edit-ordering"), "agent"),
		chromedp.Click(chromedp.ID("save")),
	))
	wait(t, ctx, "the saved settings", shows("X-Token (values hidden)"))
	got := b.admin(t, "GET", "/v1/subscriptions/"+sub.str("id"), nil).body
	require.Equal(t, []any{"agent.step.*", "agent.run.completed"}, got["event_types"])
	require.EqualValues(t, 5, got["rate_limit"])
	require.Equal(t, []any{"X-Token"}, got["header_names"])
	require.Equal(t, "agent", got["ordering"])

	// Disable (after a confirmation) and enable.
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.ID("disable"))))
	wait(t, ctx, "the enable button", `document.getElementById("enable") !== null`)
	require.Equal(t, false, b.admin(t, "GET", "/v1/subscriptions/"+sub.str("id"), nil).body["enabled"])
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.ID("enable"))))
	wait(t, ctx, "the disable button", `document.getElementById("disable") !== null`)
	require.Equal(t, true, b.admin(t, "GET", "/v1/subscriptions/"+sub.str("id"), nil).body["enabled"])

	// Rotate the secret: the new one once, the old one signing for the grace.
	require.NoError(t, chromedp.Do(ctx, chromedp.SetValue(chromedp.ID("grace"), "1h"), chromedp.Click(chromedp.ID("rotate"))))
	wait(t, ctx, "the new secret", shows("The previous secret keeps signing until"))
	secret, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("secret").textContent`))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(secret, "whsec_"))

	// Recover the dead delivery, once the receiver works again.
	failing.status.Store(http.StatusNoContent)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(b.server.URL+"/portal/endpoints/"+dead.str("id"))))
	wait(t, ctx, "the endpoint", shows("Recover failed deliveries"))
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.ID("recover"))))
	wait(t, ctx, "the recovery page", `location.pathname.startsWith("/portal/recoveries/")`)
	wait(t, ctx, "the recovery's end, through the page's own refresh", shows("Done: 1 failed deliveries sent again"))
	screenshot(t, ctx, "portal-recovery.png")
	b.waitFinal(t, 1)
	deliveries := b.admin(t, "GET", "/v1/deliveries?subscription_id="+dead.str("id"), nil).list()
	require.Len(t, deliveries, 1)
	require.Equal(t, "delivered", deliveries[0]["state"])
}
