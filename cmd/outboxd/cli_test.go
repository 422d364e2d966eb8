package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox/outboxtest"
	"github.com/outboxd/outboxd/outbox/signing"
)

func TestVersion(t *testing.T) {
	t.Parallel()

	res := runCLI(t, nil, "", "version")
	require.Equal(t, 0, res.code)
	require.Regexp(t, `^outboxd \S+ \(go1\.`, res.stdout)
}

func TestNoDatabaseIsAClearError(t *testing.T) {
	t.Parallel()

	for _, args := range [][]string{{"migrate", "up"}, {"migrate", "status"}, {"publish", "--type", "a.b"}, {"subscriptions", "list"}, {"deliveries", "list"}} {
		res := runCLI(t, map[string]string{}, "", args...)
		require.Equal(t, 1, res.code, args)
		require.Equal(t, "outboxd: no database: pass --database-url or set DATABASE_URL\n", res.stderr, args)
	}

	res := runCLI(t, map[string]string{}, "", "migrate", "status", "--database-url", "postgres://nobody:hunter2@127.0.0.1:1/none?connect_timeout=2")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "connect to Postgres at 127.0.0.1:1")
	require.NotContains(t, res.stderr, "hunter2", "a password must never be printed")
}

func TestBadFlagsAreClearErrors(t *testing.T) {
	t.Parallel()

	tests := []struct {
		args []string
		want string
	}{
		{[]string{"publish"}, `required flag(s) "type" not set`},
		{[]string{"subscriptions", "create"}, `required flag(s) "url" not set`},
		{[]string{"migrate", "status", "--schema", "Bad-Name", "--database-url", "postgres://x@127.0.0.1/x"}, `schema "Bad-Name": use lower-case letters`},
		{[]string{"migrate", "status", "--schema", "select", "--database-url", "postgres://x@127.0.0.1/x"}, `schema "select" is a reserved SQL word`},
		{[]string{"migrate", "down", "--steps", "0"}, "--steps: 0; roll back at least 1 migration"},
		{[]string{"migrate", "down", "--all", "--steps", "2"}, "--steps and --all: choose one"},
		{[]string{"listen", "--port", "0"}, "--secret is required"},
		{[]string{"listen", "--port", "0", "--secret", "nope"}, `--secret: secret must start with "whsec_"`},
		{[]string{"nonsense"}, `unknown command "nonsense"`},
	}
	for _, tt := range tests {
		res := runCLI(t, map[string]string{}, "", tt.args...)
		require.Equal(t, 1, res.code, tt.args)
		require.Contains(t, res.stderr, tt.want, tt.args)
	}
}

func TestMigrate(t *testing.T) {
	t.Parallel()

	env := map[string]string{"DATABASE_URL": outboxtest.DatabaseURL(), "OUTBOXD_SCHEMA": "t_cli_" + strings.ToLower(randomHex(t))}
	t.Cleanup(func() {
		_, err := outboxtest.Pool(t).Exec(context.WithoutCancel(t.Context()), "DROP SCHEMA IF EXISTS "+env["OUTBOXD_SCHEMA"]+" CASCADE")
		require.NoError(t, err)
	})

	res := runCLI(t, env, "", "migrate", "status")
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "River:    0 of 8")
	require.Contains(t, res.stdout, "pending migrations: run `outboxd migrate up`")

	res = runCLI(t, env, "", "migrate", "up")
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "River: applied versions [1 2 3 4 5 6 7 8]")
	require.Regexp(t, `outboxd: applied versions \[1( \d+)*\]`, res.stdout)

	res = runCLI(t, env, "", "migrate", "up")
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "Nothing to do")

	res = runCLI(t, env, "", "migrate", "status", "--json")
	require.Equal(t, 0, res.code, res.stderr)
	var status map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &status))
	require.Equal(t, true, status["up_to_date"])
	require.Equal(t, env["OUTBOXD_SCHEMA"], status["schema"])

	res = runCLI(t, env, "", "migrate", "down", "--all", "--yes")
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "Dropped schema "+env["OUTBOXD_SCHEMA"]+": nothing else was in it.")
}

func TestSubscriptionsCommands(t *testing.T) {
	t.Parallel()

	b := setupCLI(t)

	// Loopback needs the allow-list; so do the other special ranges.
	res := b.run(t, "", "subscriptions", "create", "--url", "http://127.0.0.1:9/hook")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "outboxd: --url: 127.0.0.1 is a loopback address")
	res = b.run(t, "", "subscriptions", "create", "--url", "http://169.254.169.254/latest")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "link-local (cloud metadata)")
	res = b.run(t, "", "subscriptions", "create", "--url", "ftp://example.com/", "--allow-private-targets", "127.0.0.0/8")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, `scheme must be http or https, not "ftp"`)
	res = b.run(t, "", "subscriptions", "create", "--url", "http://127.0.0.1:9/", "--allow-private-targets", "127.0.0.0/8", "--events", "Agent.Step")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, `outboxd: --events: "Agent.Step" is not an event type`)

	res = b.run(t, "", "subscriptions", "create", "--url", "http://127.0.0.1:9/hook", "--allow-private-targets", "127.0.0.0/8",
		"--events", "agent.step.*,agent.run.completed", "--agent", "agent-1", "--retry-schedule", "1s,5s", "--json")
	require.Equal(t, 0, res.code, res.stderr)
	var created struct {
		ID            string   `json:"id"`
		URL           string   `json:"url"`
		EventTypes    []string `json:"event_types"`
		AgentID       string   `json:"agent_id"`
		Secret        string   `json:"secret"`
		RetrySchedule []string `json:"retry_schedule"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &created))
	require.True(t, strings.HasPrefix(created.ID, "sub_"))
	require.Equal(t, []string{"agent.step.*", "agent.run.completed"}, created.EventTypes)
	require.Equal(t, "agent-1", created.AgentID)
	require.Equal(t, []string{"1s", "5s"}, created.RetrySchedule)
	_, err := standardwebhooks.NewWebhook(created.Secret)
	require.NoError(t, err, "the secret is usable by the official verifier")

	// Delivery control, as external checks pass it.
	res = b.run(t, "", "subscriptions", "create", "--url", "http://127.0.0.1:9/ordered", "--allow-private-targets", "127.0.0.0/8",
		"--rate-limit", "5", "--max-in-flight", "3", "--ordering", "agent", "--on-dead", "skip", "--retry-schedule", "1s,5s")
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "rate limit:      5/s")
	require.Contains(t, res.stdout, "max in flight:   3")
	require.Contains(t, res.stdout, "ordering:        agent (on dead: skip)")
	res = b.run(t, "", "subscriptions", "create", "--url", "http://127.0.0.1:9/x", "--allow-private-targets", "127.0.0.0/8", "--ordering", "sideways")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, `outboxd: --ordering: "sideways" is not an ordering: none or agent`)
	res = b.run(t, "", "subscriptions", "create", "--url", "http://127.0.0.1:9/x", "--allow-private-targets", "127.0.0.0/8", "--on-dead", "retry")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, `outboxd: --on-dead: "retry" is not a choice: block or skip`)

	// A given secret is kept; the human output shows it once.
	secret := "whsec_" + strings.Repeat("QUJD", 8)
	res = b.run(t, "", "subscriptions", "create", "--url", "http://127.0.0.1:9/two", "--allow-private-targets", "127.0.0.0/8", "--secret", secret)
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "secret:  "+secret)

	res = b.run(t, "", "subscriptions", "list")
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, created.ID)
	require.NotContains(t, res.stdout, "whsec_", "list never shows secrets")
	res = b.run(t, "", "subscriptions", "list", "--agent", "agent-1", "--json")
	require.Equal(t, 0, res.code, res.stderr)
	require.NotContains(t, res.stdout, "whsec_")
	var listed struct {
		Data []map[string]any `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &listed))
	require.Len(t, listed.Data, 1)

	res = b.run(t, "", "subscriptions", "delete", created.ID)
	require.Equal(t, 0, res.code, res.stderr)
	require.Equal(t, "Deleted subscription "+created.ID+"\n", res.stdout)
	res = b.run(t, "", "subscriptions", "delete", created.ID)
	require.Equal(t, 1, res.code)
	require.Equal(t, "outboxd: subscription "+created.ID+" not found\n", res.stderr)
}

func TestSubscriptionsCreateNeedsAnEncryptionKey(t *testing.T) {
	t.Parallel()

	b := setupCLI(t)
	delete(b.env, "OUTBOXD_ENCRYPTION_KEY")
	res := b.run(t, "", "subscriptions", "create", "--url", "http://127.0.0.1:9/", "--allow-private-targets", "127.0.0.0/8")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "no encryption key: set OUTBOXD_ENCRYPTION_KEY to 32 random bytes in base64")
	require.Contains(t, res.stderr, "openssl rand -base64 32")

	b.env["OUTBOXD_ENCRYPTION_KEY"] = "c2hvcnQ=" // base64 of "short"
	res = b.run(t, "", "subscriptions", "create", "--url", "http://127.0.0.1:9/", "--allow-private-targets", "127.0.0.0/8")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "OUTBOXD_ENCRYPTION_KEY: encryption key must be 32 bytes, not 5")

	res = b.run(t, "", "subscriptions", "list", "--json")
	require.Equal(t, 1, res.code, "a malformed key is refused even where no secret is needed")
}

func TestPublishCommand(t *testing.T) {
	t.Parallel()

	b := setupCLI(t)
	res := b.run(t, "", "publish", "--type", "agent.step.completed", "--agent", "agent-1", "--org", "org-1", "--data", `{"step_id":"step-1"}`)
	require.Equal(t, 0, res.code, res.stderr)
	require.Regexp(t, `^evt_[0-9a-f]{32}\n$`, res.stdout)

	res = b.run(t, `{"run_id":"run-1"}`, "publish", "--type", "agent.run.completed", "--data", "-", "--idempotency-key", "run-1", "--json")
	require.Equal(t, 0, res.code, res.stderr)
	var event map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &event))
	require.Equal(t, map[string]any{"run_id": "run-1"}, event["payload"])

	again := b.run(t, `{"run_id":"run-1"}`, "publish", "--type", "agent.run.completed", "--data", "-", "--idempotency-key", "run-1", "--json")
	require.Equal(t, 0, again.code, again.stderr)
	var repeated map[string]any
	require.NoError(t, json.Unmarshal([]byte(again.stdout), &repeated))
	require.Equal(t, event["id"], repeated["id"], "a repeated idempotency key returns the first event")

	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--type", "Agent.Step"}, `outboxd: --type: invalid event type 'Agent.Step' (An event type is two or more dot-separated words`},
		{[]string{"--type", "agent.step.completed", "--data", "[1,2]"}, "outboxd: --data: event payload must be a JSON object, not array"},
		{[]string{"--type", "agent.step.completed", "--data", "{oops"}, "outboxd: --data: not valid JSON"},
	} {
		res := b.run(t, "", append([]string{"publish"}, bad.args...)...)
		require.Equal(t, 1, res.code, bad.args)
		require.Contains(t, res.stderr, bad.want)
	}
}

func TestDeliveriesListCommand(t *testing.T) {
	t.Parallel()

	b := setupCLI(t)
	res := b.run(t, "", "deliveries", "list")
	require.Equal(t, 0, res.code, res.stderr)
	require.Equal(t, "ID  EVENT  SUBSCRIPTION  STATE  ATTEMPTS  LAST STATUS  WHEN  LAST ERROR\n", res.stdout)

	res = b.run(t, "", "deliveries", "list", "--state", "lost")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, `--state: unknown delivery state "lost"; one of pending, delivering, retrying, delivered, dead, cancelled`)

	res = b.run(t, "", "deliveries", "list", "--json", "--state", "dead")
	require.Equal(t, 0, res.code, res.stderr)
	require.JSONEq(t, `{"data": [], "next_cursor": null}`, res.stdout)
}

func TestListenVerifiesAndPrints(t *testing.T) {
	t.Parallel()

	secret, err := signing.GenerateSecret()
	require.NoError(t, err)
	port := freePort(t)
	var stdout, stderr bytes.Buffer
	a := &app{lookupEnv: func(string) (string, bool) { return "", false }, stdin: strings.NewReader(""), stdout: &syncWriter{w: &stdout}, stderr: &syncWriter{w: &stderr}}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int)
	go func() {
		done <- execute(ctx, a, []string{"listen", "--port", fmt.Sprint(port), "--secret", secret.String()})
	}()
	t.Cleanup(cancel)

	url := fmt.Sprintf("http://127.0.0.1:%d/hook", port)
	body := []byte(`{"id":"evt_1","type":"agent.step.completed","timestamp":"2026-01-01T00:00:00Z","organization_id":null,"agent_id":"agent-1","data":{"step_id":"s1"}}`)
	post := func(sign signing.Secret) int {
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		require.NoError(t, err)
		signing.SetHeaders(req.Header, "evt_1", time.Now(), body, sign)
		var resp *http.Response
		require.Eventually(t, func() bool { resp, err = http.DefaultClient.Do(req); return err == nil }, 5*time.Second, 20*time.Millisecond)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusNoContent, post(secret))
	other, err := signing.GenerateSecret()
	require.NoError(t, err)
	require.Equal(t, http.StatusUnauthorized, post(other))

	cancel()
	require.Equal(t, 0, <-done)
	require.Regexp(t, `^\d\d:\d\d:\d\d\.\d{3}  verified  evt_1  agent\.step\.completed agent=agent-1  \{"step_id":"s1"\}\n$`, stdout.String())
	require.Contains(t, stderr.String(), "rejected POST /hook")
	require.Contains(t, stderr.String(), "no signature matches")
}

func TestListenPrintsJSONLines(t *testing.T) {
	t.Parallel()

	secret, err := signing.GenerateSecret()
	require.NoError(t, err)
	port := freePort(t)
	var stdout bytes.Buffer
	out := &syncWriter{w: &stdout}
	a := &app{lookupEnv: func(string) (string, bool) { return "", false }, stdin: strings.NewReader(""), stdout: out, stderr: io.Discard}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int)
	go func() {
		done <- execute(ctx, a, []string{"listen", "--port", fmt.Sprint(port), "--secret", secret.String(), "--json"})
	}()
	t.Cleanup(cancel)

	body := []byte(`{"id":"evt_2","type":"agent.run.completed","data":{"run_id":"r1"}}`)
	req, err := http.NewRequest(http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d/", port), bytes.NewReader(body))
	require.NoError(t, err)
	signing.SetHeaders(req.Header, "evt_2", time.Now(), body, secret)
	var resp *http.Response
	require.Eventually(t, func() bool { resp, err = http.DefaultClient.Do(req); return err == nil }, 5*time.Second, 20*time.Millisecond)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	cancel()
	require.Equal(t, 0, <-done)

	var line map[string]any
	out.mu.Lock()
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &line))
	out.mu.Unlock()
	require.Equal(t, "evt_2", line["webhook_id"])
	require.Equal(t, true, line["verified"])
	require.Equal(t, map[string]any{"id": "evt_2", "type": "agent.run.completed", "data": map[string]any{"run_id": "r1"}}, line["event"])
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port //nolint:forcetypeassert // a TCP listener
}
