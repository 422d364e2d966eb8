package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTokensCommands(t *testing.T) {
	t.Parallel()
	b := setupCLI(t)

	res := b.run(t, "", "tokens", "create")
	require.Equal(t, 1, res.code)
	require.Equal(t, "outboxd: --org is required: a token sees one organization\n", res.stderr)

	res = b.run(t, "", "tokens", "create", "--org", "org-1", "--name", "ci", "--json")
	require.Equal(t, 0, res.code, res.stderr)
	var created map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &created))
	token, id := created["token"].(string), created["id"].(string)
	require.True(t, strings.HasPrefix(token, "obx_"))
	require.True(t, strings.HasPrefix(id, "tok_"))

	res = b.run(t, "", "tokens", "list")
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, id)
	require.Contains(t, res.stdout, "org-1")
	require.NotContains(t, res.stdout, token, "a token's value is shown once")

	res = b.run(t, "", "tokens", "revoke", id)
	require.Equal(t, 0, res.code, res.stderr)
	require.NotContains(t, b.run(t, "", "tokens", "list").stdout, id, "revoked tokens are hidden")
	require.Contains(t, b.run(t, "", "tokens", "list", "--all").stdout, id)

	res = b.run(t, "", "tokens", "revoke", "tok_nope")
	require.Equal(t, 1, res.code)
	require.Equal(t, "outboxd: token tok_nope: not found\n", res.stderr)
}

func TestDeliveryOperationsCommands(t *testing.T) {
	t.Parallel()
	b := setupCLI(t)
	var answers atomic.Int64
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		answers.Add(1)
		w.WriteHeader(http.StatusTeapot)
	}))
	t.Cleanup(receiver.Close)

	res := b.run(t, "", "subscriptions", "create", "--url", receiver.URL, "--allow-private-targets", "127.0.0.0/8", "--json")
	require.Equal(t, 0, res.code, res.stderr)
	var sub map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &sub))
	id := sub["id"].(string)

	res = b.run(t, "", "subscriptions", "test", id)
	require.Equal(t, 1, res.code, "a test blocked by the SSRF guard fails")
	require.Contains(t, res.stderr, "blocked_address")

	res = b.run(t, "", "subscriptions", "test", id, "--allow-private-targets", "127.0.0.0/8")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "the receiver answered 418")
	require.EqualValues(t, 1, answers.Load())

	res = b.run(t, "", "subscriptions", "disable", id)
	require.Equal(t, 0, res.code, res.stderr)
	require.Equal(t, "subscription "+id+" is disabled\n", res.stdout)
	res = b.run(t, "", "subscriptions", "enable", id)
	require.Equal(t, "subscription "+id+" is enabled\n", res.stdout)
	res = b.run(t, "", "subscriptions", "enable", "sub_nope")
	require.Equal(t, 1, res.code)
	require.Equal(t, "outboxd: subscription sub_nope: not found\n", res.stderr)

	res = b.run(t, "", "deliveries", "retry", "abc")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "a positive number")
	res = b.run(t, "", "deliveries", "get", "99999999")
	require.Equal(t, 1, res.code)
	require.Equal(t, "outboxd: delivery 99999999: not found\n", res.stderr)

	res = b.run(t, "", "recover", "--subscription", id)
	require.Equal(t, 1, res.code)
	require.Equal(t, "outboxd: --since: required\n", res.stderr)
	res = b.run(t, "", "recover", "--subscription", id, "--since", "yesterday")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "neither an RFC 3339 time nor a duration")
	res = b.run(t, "", "recover", "--subscription", id, "--since", "1h", "--no-wait", "--json")
	require.Equal(t, 0, res.code, res.stderr)
	var recovery map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &recovery))
	require.Equal(t, id, recovery["subscription_id"])

	res = b.run(t, "", "events", "list")
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "ID  TYPE")
	res = b.run(t, "", "events", "get", "evt_nope")
	require.Equal(t, 1, res.code)
	require.Equal(t, "outboxd: event evt_nope: not found\n", res.stderr)
}

func TestKeysRotate(t *testing.T) {
	t.Parallel()
	b := setupCLI(t)
	res := b.run(t, "", "subscriptions", "create", "--url", "https://93.184.216.34/hook", "--json")
	require.Equal(t, 0, res.code, res.stderr)

	oldKey := b.env["OUTBOXD_ENCRYPTION_KEY"]
	raw := make([]byte, 32)
	_, err := rand.Read(raw)
	require.NoError(t, err)
	b.env["OUTBOXD_ENCRYPTION_KEY"] = base64.StdEncoding.EncodeToString(raw)

	res = b.run(t, "", "keys", "rotate")
	require.Equal(t, 1, res.code, "the old key is needed to read the secrets")
	require.Contains(t, res.stderr, "OUTBOXD_ENCRYPTION_KEYS_OLD")

	b.env["OUTBOXD_ENCRYPTION_KEYS_OLD"] = oldKey
	res = b.run(t, "", "keys", "rotate")
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "1 secrets re-encrypted")

	// The old key is no longer needed.
	delete(b.env, "OUTBOXD_ENCRYPTION_KEYS_OLD")
	res = b.run(t, "", "keys", "rotate", "--json")
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, `"resealed":0`)
}

func TestSubscriptionEditCommands(t *testing.T) {
	t.Parallel()
	b := setupCLI(t)
	res := b.run(t, "", "subscriptions", "create", "--url", "https://93.184.216.34/hook", "--json")
	require.Equal(t, 0, res.code, res.stderr)
	var sub map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &sub))
	id, secret := sub["id"].(string), sub["secret"].(string)

	res = b.run(t, "", "subscriptions", "update", id)
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "nothing to change")
	res = b.run(t, "", "subscriptions", "update", id, "--url", "http://127.0.0.1/hook")
	require.Equal(t, 1, res.code, "the SSRF check applies to a new URL")
	require.Contains(t, res.stderr, "loopback")
	res = b.run(t, "", "subscriptions", "update", id, "--events", "agent.step.*", "--retry-schedule", "1s,5s", "--json")
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, `"event_types":["agent.step.*"]`)
	require.Contains(t, res.stdout, `"retry_schedule":["1s","5s"]`)
	res = b.run(t, "", "subscriptions", "update", id, "--retry-schedule", "default", "--rate-limit", "5", "--json")
	require.NotContains(t, res.stdout, "retry_schedule")
	require.Contains(t, res.stdout, `"rate_limit":5`)
	res = b.run(t, "", "subscriptions", "update", id, "--rate-limit", "-3")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "--rate-limit: deliveries per second")

	res = b.run(t, "", "subscriptions", "rotate-secret", id, "--grace", "1h", "--json")
	require.Equal(t, 0, res.code, res.stderr)
	var rotated map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &rotated))
	require.NotEqual(t, secret, rotated["secret"])
	require.True(t, strings.HasPrefix(rotated["secret"].(string), "whsec_"))
	res = b.run(t, "", "subscriptions", "rotate-secret", id, "--grace", "200h")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "grace")

	res = b.run(t, "", "agents", "webhook", "set", "agent-1", "--url", "https://93.184.216.34/a", "--events", "agent.run.completed")
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "created the webhook of agent agent-1")
	require.Contains(t, res.stdout, "secret (shown only now): whsec_")
	res = b.run(t, "", "agents", "webhook", "set", "agent-1", "--url", "https://93.184.216.34/b", "--disabled")
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "updated")
	require.NotContains(t, res.stdout, "whsec_")
	res = b.run(t, "", "agents", "webhook", "get", "agent-1")
	require.Contains(t, res.stdout, "https://93.184.216.34/b, events *, enabled false")
	require.Equal(t, 0, b.run(t, "", "agents", "webhook", "delete", "agent-1").code)
	res = b.run(t, "", "agents", "webhook", "get", "agent-1")
	require.Equal(t, 1, res.code)
	require.Equal(t, "outboxd: agent agent-1: webhook not found\n", res.stderr)
}
