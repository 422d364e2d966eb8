package httpapi_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox/httpapi"
)

// The pages a benchmark (or any tool) can load without a browser: NewHandler
// with a store serves them to the cookies of PortalSessionCookie and
// AdminSessionCookie, with the strict CSP on every page.
func TestPagesWithoutABrowser(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.createSubscription(t, map[string]any{"url": newReceiver(t, http.StatusNoContent).server.URL, "organization_id": "org-a"})
	server := httptest.NewServer(httpapi.NewHandler(&httpapi.Config{Store: b.store, AdminTokens: []string{adminToken}}))
	t.Cleanup(server.Close)

	portal, err := httpapi.PortalSessionCookie(b.ctx, b.store, "org-a", "")
	require.NoError(t, err)
	admin, err := httpapi.AdminSessionCookie(b.ctx, b.store, adminToken)
	require.NoError(t, err)
	get := func(cookie *http.Cookie, path string) (int, string, http.Header) {
		t.Helper()
		req, err := http.NewRequestWithContext(b.ctx, "GET", server.URL+path, nil)
		require.NoError(t, err)
		req.AddCookie(cookie)
		resp, err := server.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body), resp.Header
	}
	for _, path := range []string{"/portal/endpoints", "/portal/endpoints/" + sub.str("id"), "/portal/deliveries", "/portal/events"} {
		status, body, header := get(portal, path)
		require.Equal(t, http.StatusOK, status, path)
		require.Contains(t, header.Get("Content-Security-Policy"), "script-src 'self'")
		require.NotContains(t, body, "<script>", "no inline script")
		require.NotContains(t, body, "style=", "no inline style")
	}
	for _, path := range []string{"/console/", "/console/endpoints", "/console/deliveries"} {
		status, _, _ := get(admin, path)
		require.Equal(t, http.StatusOK, status, path)
	}
	status, body, _ := get(portal, "/console/")
	require.Equal(t, http.StatusOK, status, "a portal cookie is not an admin session: the console sends it to sign in")
	require.True(t, strings.Contains(body, "Sign in"), body)
}
