package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// run --help says what the HTTP server serves, not only health and metrics.
func TestRunHelpNamesTheHTTPSurface(t *testing.T) {
	t.Parallel()

	res := runCLI(t, nil, "", "run", "--help")
	require.Equal(t, 0, res.code, res.stderr)
	for _, want := range []string{"/v1", "/openapi.json", "/riverui/", "/login", "/healthz", "/readyz", "/metrics",
		"--http-read-timeout", "--http-idle-timeout", "--http-max-connections", "--session-lifetime"} {
		require.Contains(t, res.stdout, want)
	}
	addr := res.stdout[strings.Index(res.stdout, "--http-addr string"):]
	addr = addr[:strings.Index(addr, "\n")]
	require.Contains(t, addr, "REST API (/v1), River UI (/riverui/, sign-in at /login)")
}

func TestRunRefusesBadHTTPFlags(t *testing.T) {
	t.Parallel()

	b := setupCLI(t)
	for flag, want := range map[string]string{
		"--http-read-timeout=0":    "--http-read-timeout: must be positive, not 0s",
		"--http-idle-timeout=-1s":  "--http-idle-timeout: must be positive, not -1s",
		"--http-max-connections=0": "--http-max-connections: must be at least 1, not 0",
		"--session-lifetime=0":     "--session-lifetime: 0s is not between 0 and 720h0m0s",
		"--session-lifetime=1000h": "--session-lifetime: 1000h0m0s is not between 0 and 720h0m0s",
	} {
		res := b.run(t, "", "run", "--http-addr", "127.0.0.1:0", flag)
		require.Equal(t, 1, res.code, flag)
		require.Equal(t, "outboxd: "+want+"\n", res.stderr, flag)
	}
}

// The daemon serves what the repros hit, wired as in production: the
// River UI behind sign-in, and cross-site writes and untyped API bodies refused.
func TestDaemonServesTheRiverUIBehindSignIn(t *testing.T) {
	t.Parallel()

	b := newProcessBundle(t)
	token := "admin-token-" + randomHex(t) + randomHex(t)
	b.env = append(b.env, "OUTBOXD_API_TOKEN="+token)
	daemon := b.startDaemon(t)
	waitReady(t, daemon)
	base := "http://" + daemon.addr
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, path, body string, header map[string]string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		require.NoError(t, err)
		for name, value := range header {
			req.Header.Set(name, value)
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, string(data)
	}

	resp, _ := do("GET", "/riverui/", "", map[string]string{"Accept": "text/html"})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/login?next=%2Friverui%2F", resp.Header.Get("Location"))
	resp, page := do("GET", "/login", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, page, `<form method="post" action="/login">`)

	resp, _ = do("POST", "/login", "token="+token, map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": base})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Len(t, resp.Cookies(), 1)
	cookie := resp.Cookies()[0]
	resp, _ = do("GET", "/riverui/api/jobs?state=completed", "", map[string]string{"Cookie": cookie.Name + "=" + cookie.Value})
	require.Equal(t, http.StatusOK, resp.StatusCode)

	basic := fmt.Sprintf("Basic %s", basicCredentials("admin", token))
	resp, body := do("POST", "/riverui/api/jobs/delete", `{"ids":["1"]}`, map[string]string{"Authorization": basic, "Origin": "http://evil.example", "Content-Type": "text/plain"})
	require.Equal(t, http.StatusForbidden, resp.StatusCode, body)
	resp, body = do("POST", "/v1/subscriptions", `{"url":"http://127.0.0.1:9/"}`, map[string]string{"Authorization": "Bearer " + token})
	require.Equal(t, http.StatusUnsupportedMediaType, resp.StatusCode, body)
	resp, _ = do("GET", "/v1/subscriptions", "", map[string]string{"Accept": "text/html"})
	require.Equal(t, []string{`Bearer realm="outboxd"`, `Basic realm="outboxd", charset="UTF-8"`}, resp.Header.Values("WWW-Authenticate"))
}

func basicCredentials(user, password string) string {
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth(user, password)
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}
