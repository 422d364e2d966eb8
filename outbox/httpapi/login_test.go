package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/httpapi"
	"github.com/outboxd/outboxd/outbox/outboxtest"
)

// page is an answer to a browser-like request, redirects not followed.
type page struct {
	status int
	header http.Header
	body   string
}

func (p *page) cookie(t *testing.T) *http.Cookie {
	t.Helper()
	for _, c := range (&http.Response{Header: p.header}).Cookies() {
		if c.Name == httpapi.SessionCookie {
			return c
		}
	}
	return nil
}

// browse sends a request as a browser on the server's own pages would, with
// the given headers on top, and does not follow redirects.
func browse(t *testing.T, h http.Handler, method, target string, form url.Values, header map[string]string) *page {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequestWithContext(context.Background(), method, target, body)
	req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "http://"+req.Host)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	for name, value := range header {
		if value == "" {
			req.Header.Del(name)
		} else {
			req.Header.Set(name, value)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return &page{status: rec.Code, header: rec.Result().Header, body: rec.Body.String()}
}

func withCookie(c *http.Cookie) map[string]string {
	return map[string]string{"Cookie": c.Name + "=" + c.Value}
}

func TestRiverUISignIn(t *testing.T) {
	t.Parallel()
	b := setup(t)
	h := httpapi.NewHandler(b.config)
	signIn := func(t *testing.T) *http.Cookie {
		t.Helper()
		p := browse(t, h, "POST", "http://outboxd.test/login", url.Values{"token": {adminToken}, "next": {"/riverui/"}}, nil)
		require.Equal(t, http.StatusSeeOther, p.status, p.body)
		cookie := p.cookie(t)
		require.NotNil(t, cookie)
		return cookie
	}

	t.Run("PageLoadsGoToTheForm", func(t *testing.T) {
		p := browse(t, h, "GET", "http://outboxd.test/riverui/jobs?state=completed", nil, nil)
		require.Equal(t, http.StatusSeeOther, p.status)
		require.Equal(t, "/login?next=%2Friverui%2Fjobs%3Fstate%3Dcompleted", p.header.Get("Location"))

		// Scripts and API clients get the 401, with a challenge per line.
		for _, accept := range []string{"*/*", "application/json", ""} {
			p = browse(t, h, "GET", "http://outboxd.test/riverui/api/jobs?state=completed", nil, map[string]string{"Accept": accept})
			require.Equal(t, http.StatusUnauthorized, p.status)
			require.Equal(t, []string{`Bearer realm="outboxd"`, `Basic realm="outboxd", charset="UTF-8"`}, p.header.Values("WWW-Authenticate"))
			require.Equal(t, "application/problem+json", p.header.Get("Content-Type"))
		}
		// A wrong token in Authorization is asked again, not redirected.
		p = browse(t, h, "GET", "http://outboxd.test/riverui/", nil, map[string]string{"Authorization": "Bearer nope"})
		require.Equal(t, http.StatusUnauthorized, p.status)
	})

	t.Run("Form", func(t *testing.T) {
		p := browse(t, h, "GET", "http://outboxd.test/login?next=%2Friverui%2Fqueues", nil, nil)
		require.Equal(t, http.StatusOK, p.status)
		require.Equal(t, "text/html; charset=utf-8", p.header.Get("Content-Type"))
		require.Equal(t, "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'", p.header.Get("Content-Security-Policy"))
		require.Equal(t, "DENY", p.header.Get("X-Frame-Options"))
		require.Equal(t, "no-store", p.header.Get("Cache-Control"))
		require.Contains(t, p.body, `<form method="post" action="/login">`)
		require.Contains(t, p.body, `<input type="hidden" name="next" value="/riverui/queues">`)
		require.Contains(t, p.body, `<input id="token" name="token" type="password"`)
		require.NotContains(t, p.body, "<script", "no script at all")
		require.NotContains(t, p.body, "style=", "no inline style")

		css := browse(t, h, "GET", "http://outboxd.test/login/style.css", nil, nil)
		require.Equal(t, http.StatusOK, css.status)
		require.Contains(t, css.header.Get("Content-Type"), "text/css")
	})

	t.Run("RefusedTokens", func(t *testing.T) {
		org, err := b.store.TokenCreate(b.ctx, &outbox.TokenCreateParams{OrganizationID: "org-a"})
		require.NoError(t, err)
		for _, tt := range []struct {
			token  string
			status int
			says   string
		}{
			{"wrong-token-0123456789", http.StatusUnauthorized, "That is not a valid admin token."},
			{"", http.StatusUnauthorized, "That is not a valid admin token."},
			{org.Secret, http.StatusForbidden, "An organization token cannot open the River UI"},
		} {
			p := browse(t, h, "POST", "http://outboxd.test/login", url.Values{"token": {tt.token}, "next": {"/riverui/"}}, nil)
			require.Equal(t, tt.status, p.status)
			require.Contains(t, p.body, tt.says)
			require.Nil(t, p.cookie(t), "no session")
		}
		require.Zero(t, countSessions(t, b))
		require.NotContains(t, b.logs.String(), org.Secret)
	})

	t.Run("SessionOpensTheRiverUIOnly", func(t *testing.T) {
		p := browse(t, h, "POST", "http://outboxd.test/login", url.Values{"token": {adminToken}, "next": {"/riverui/jobs?state=completed"}}, nil)
		require.Equal(t, http.StatusSeeOther, p.status, p.body)
		require.Equal(t, "/riverui/jobs?state=completed", p.header.Get("Location"))
		cookie := p.cookie(t)
		require.NotNil(t, cookie)
		require.True(t, strings.HasPrefix(cookie.Value, outbox.WebSessionTokenPrefix))
		setCookie := p.header.Get("Set-Cookie")
		require.Contains(t, setCookie, "Path=/; Max-Age=43200; HttpOnly; SameSite=Strict")
		require.NotContains(t, setCookie, "Secure", "plain HTTP: a Secure cookie would not come back")
		require.NotContains(t, b.logs.String(), cookie.Value)
		require.NotContains(t, b.logs.String(), adminToken)

		ui := browse(t, h, "GET", "http://outboxd.test/riverui/", nil, withCookie(cookie))
		require.Equal(t, http.StatusOK, ui.status)
		require.Contains(t, ui.body, "<html")
		api := browse(t, h, "GET", "http://outboxd.test/riverui/api/jobs?state=completed", nil, map[string]string{"Accept": "*/*", "Cookie": "outboxd_session=" + cookie.Value})
		require.Equal(t, http.StatusOK, api.status, api.body)

		// The cookie is not an API credential, and another site cannot use it.
		v1 := browse(t, h, "GET", "http://outboxd.test/v1/subscriptions", nil, withCookie(cookie))
		require.Equal(t, http.StatusUnauthorized, v1.status)
		crossSite := withCookie(cookie)
		crossSite["Origin"], crossSite["Sec-Fetch-Site"], crossSite["Content-Type"] = "http://evil.example", "cross-site", "text/plain"
		require.Equal(t, http.StatusForbidden, browse(t, h, "POST", "http://outboxd.test/riverui/api/jobs/delete", nil, crossSite).status)
	})

	t.Run("SecureOverTLS", func(t *testing.T) {
		p := browse(t, h, "POST", "https://outboxd.test/login", url.Values{"token": {adminToken}}, map[string]string{"Origin": "https://outboxd.test"})
		require.Equal(t, http.StatusSeeOther, p.status, p.body)
		require.Contains(t, p.header.Get("Set-Cookie"), "; Secure")
		p = browse(t, h, "POST", "http://outboxd.test/login", url.Values{"token": {adminToken}}, map[string]string{"X-Forwarded-Proto": "https"})
		require.Contains(t, p.header.Get("Set-Cookie"), "; Secure", "behind a proxy that terminates TLS")
	})

	t.Run("NextStaysOnThisSite", func(t *testing.T) {
		for next, want := range map[string]string{
			"/riverui/queues?x=1":       "/riverui/queues?x=1",
			"//evil.example/":           "/riverui/",
			"/\\evil.example":           "/riverui/",
			"https://evil.example/":     "/riverui/",
			"javascript:alert(1)":       "/riverui/",
			"/%0d%0aSet-Cookie:%20x=1":  "/%0d%0aSet-Cookie:%20x=1",
			"/riverui/\r\nLocation: /x": "/riverui/",
			"/login":                    "/riverui/",
			"/logout":                   "/riverui/",
			"":                          "/riverui/",
			"riverui/":                  "/riverui/",
		} {
			p := browse(t, h, "POST", "http://outboxd.test/login", url.Values{"token": {adminToken}, "next": {next}}, nil)
			require.Equal(t, http.StatusSeeOther, p.status, next)
			require.Equal(t, want, p.header.Get("Location"), "next %q", next)
		}
	})

	t.Run("SignedInFormAndSignOut", func(t *testing.T) {
		cookie := signIn(t)
		p := browse(t, h, "GET", "http://outboxd.test/login?next=%2Friverui%2Fqueues", nil, withCookie(cookie))
		require.Equal(t, http.StatusSeeOther, p.status, "signed in already: straight on")
		require.Equal(t, "/riverui/queues", p.header.Get("Location"))
		p = browse(t, h, "GET", "http://outboxd.test/login", nil, withCookie(cookie))
		require.Equal(t, http.StatusOK, p.status)
		require.Contains(t, p.body, `<form method="post" action="/logout">`)

		// Signing out needs a request from this site, like every write.
		crossSite := withCookie(cookie)
		crossSite["Origin"], crossSite["Sec-Fetch-Site"] = "http://evil.example", "cross-site"
		require.Equal(t, http.StatusForbidden, browse(t, h, "POST", "http://outboxd.test/logout", url.Values{}, crossSite).status)

		same := withCookie(cookie)
		out := browse(t, h, "POST", "http://outboxd.test/logout", url.Values{}, same)
		require.Equal(t, http.StatusSeeOther, out.status)
		require.Equal(t, "/login", out.header.Get("Location"))
		require.Equal(t, -1, out.cookie(t).MaxAge, "the cookie is deleted")
		_, err := b.store.WebSessionAuthenticate(b.ctx, cookie.Value)
		require.ErrorIs(t, err, outbox.ErrNotFound, "and the session ended on the server")

		again := browse(t, h, "GET", "http://outboxd.test/riverui/", nil, withCookie(cookie))
		require.Equal(t, http.StatusSeeOther, again.status, "a copied cookie no longer opens anything")
		require.Equal(t, -1, again.cookie(t).MaxAge)
	})

	t.Run("EndedSessions", func(t *testing.T) {
		expired := signIn(t)
		_, err := outboxtest.Pool(t).Exec(b.ctx, fmt.Sprintf("UPDATE %s.web_sessions SET created_at = now() - interval '13 hours', expires_at = now() - interval '1 hour' WHERE token_digest = sha256($1::bytea)", b.store.Schema()), expired.Value)
		require.NoError(t, err)
		require.Equal(t, http.StatusSeeOther, browse(t, h, "GET", "http://outboxd.test/riverui/", nil, withCookie(expired)).status)

		// A session outlives neither the admin token it signed in with…
		cookie := signIn(t)
		rotated := *b.config
		rotated.AdminTokens = []string{"a-new-admin-token-0123456789"}
		require.Equal(t, http.StatusSeeOther, browse(t, httpapi.NewHandler(&rotated), "GET", "http://outboxd.test/riverui/", nil, withCookie(cookie)).status)
		require.Equal(t, http.StatusOK, browse(t, h, "GET", "http://outboxd.test/riverui/", nil, withCookie(cookie)).status)

		// …nor gives an organization's session the River UI.
		orgSession, err := b.store.WebSessionCreate(b.ctx, &outbox.WebSessionCreateParams{OrganizationID: "org-a", Lifetime: time.Hour})
		require.NoError(t, err)
		p := browse(t, h, "GET", "http://outboxd.test/riverui/", nil, map[string]string{"Cookie": "outboxd_session=" + orgSession.Token})
		require.Equal(t, http.StatusForbidden, p.status)
	})

	t.Run("NoAdminToken", func(t *testing.T) {
		closed := *b.config
		closed.AdminTokens = nil
		h := httpapi.NewHandler(&closed)
		require.Contains(t, browse(t, h, "GET", "http://outboxd.test/login", nil, nil).body, "No admin token is configured (OUTBOXD_API_TOKEN)")
		p := browse(t, h, "POST", "http://outboxd.test/login", url.Values{"token": {adminToken}}, nil)
		require.Equal(t, http.StatusUnauthorized, p.status)
		require.Contains(t, p.body, "nobody can sign in")
	})

	t.Run("BrowserPrompt", func(t *testing.T) {
		p := browse(t, h, "GET", "http://outboxd.test/login/basic?next=%2Friverui%2Fqueues", nil, nil)
		require.Equal(t, http.StatusUnauthorized, p.status)
		require.Equal(t, []string{`Bearer realm="outboxd"`, `Basic realm="outboxd", charset="UTF-8"`}, p.header.Values("WWW-Authenticate"))
		require.Contains(t, p.body, `action="/login"`, "cancelling the prompt shows the form")

		basic := func(token string) map[string]string {
			req := httptest.NewRequest("GET", "/", nil)
			req.SetBasicAuth("admin", token)
			return map[string]string{"Authorization": req.Header.Get("Authorization")}
		}
		p = browse(t, h, "GET", "http://outboxd.test/login/basic?next=%2Friverui%2Fqueues", nil, basic(adminToken))
		require.Equal(t, http.StatusSeeOther, p.status)
		require.Equal(t, "/riverui/queues", p.header.Get("Location"))
		require.NotNil(t, p.cookie(t))

		crossSite := basic(adminToken)
		crossSite["Sec-Fetch-Site"] = "cross-site"
		p = browse(t, h, "GET", "http://outboxd.test/login/basic", nil, crossSite)
		require.Equal(t, http.StatusForbidden, p.status, "a GET that signs in does not run for another site's page")
		require.Nil(t, p.cookie(t))
		require.Equal(t, http.StatusUnauthorized, browse(t, h, "GET", "http://outboxd.test/login/basic", nil, basic("wrong-token-0123456789")).status)
	})
}

func countSessions(t *testing.T, b *apiBundle) int {
	t.Helper()
	var n int
	require.NoError(t, outboxtest.Pool(t).QueryRow(b.ctx, fmt.Sprintf("SELECT count(*) FROM %s.web_sessions", b.store.Schema())).Scan(&n))
	return n
}
