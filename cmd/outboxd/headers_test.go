package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox/outboxtest"
)

// makePlaintext turns a subscription's custom headers into what outboxd before
// migration 7 wrote, as that migration leaves them.
func makePlaintext(t *testing.T, schema, id string, headers map[string]string) {
	t.Helper()
	data, err := json.Marshal(headers)
	require.NoError(t, err)
	_, err = outboxtest.Pool(t).Exec(context.Background(), "UPDATE "+schema+`.subscriptions SET headers = $2, headers_key_id = NULL,
		headers_ciphertext = NULL, header_names = ARRAY(SELECT k FROM jsonb_object_keys($2::jsonb) AS k ORDER BY k COLLATE "C") WHERE id = $1`, id, data)
	require.NoError(t, err)
}

func subscriptionRows(t *testing.T, schema string) string {
	t.Helper()
	var rows string
	require.NoError(t, outboxtest.Pool(t).QueryRow(context.Background(), "SELECT coalesce(string_agg(s::text, ' '), '') FROM "+schema+".subscriptions AS s").Scan(&rows))
	return rows
}

// The CLI takes custom header values and never prints them: not in tables, not
// in --json.
func TestSubscriptionHeaderValuesAreNotShown(t *testing.T) {
	t.Parallel()
	b := setupCLI(t)
	const value = "cli_h10_must_not_leak"

	res := b.run(t, "", "subscriptions", "create", "--url", "https://93.184.216.34/hook",
		"--header", "Authorization=Bearer "+value, "--header", "X-Tenant=t1", "--json")
	require.Equal(t, 0, res.code, res.stderr)
	require.NotContains(t, res.stdout, value)
	require.Contains(t, res.stdout, `"header_names":["Authorization","X-Tenant"]`)

	res = b.run(t, "", "subscriptions", "create", "--url", "https://93.184.216.34/other", "--header", "Authorization=Bearer "+value)
	require.Equal(t, 0, res.code, res.stderr)
	require.NotContains(t, res.stdout, value)
	require.Regexp(t, `headers:\s+Authorization \(values are stored encrypted and never shown\)`, res.stdout)

	for _, args := range [][]string{{"subscriptions", "list"}, {"subscriptions", "list", "--json"}} {
		res = b.run(t, "", args...)
		require.Equal(t, 0, res.code, res.stderr)
		require.NotContains(t, res.stdout, value, args)
	}

	var id string
	require.NoError(t, outboxtest.Pool(t).QueryRow(context.Background(), "SELECT id FROM "+b.schema+".subscriptions ORDER BY id LIMIT 1").Scan(&id))
	res = b.run(t, "", "subscriptions", "update", id, "--header", "X-Api-Key=k2_"+value, "--json")
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, `"header_names":["X-Api-Key"]`, "--header replaces every header")
	require.NotContains(t, res.stdout, value)
	res = b.run(t, "", "subscriptions", "update", id, "--header", "Content-Type=text/plain")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, `header "Content-Type" is set by outboxd`)
	res = b.run(t, "", "subscriptions", "update", id, "--header", "novalue")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, `--header "novalue": use NAME=VALUE`)
	res = b.run(t, "", "subscriptions", "update", id, "--no-headers", "--json")
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, `"header_names":[]`)

	require.NotContains(t, subscriptionRows(t, b.schema), value)
}

func TestKeysRotateResealsHeaderValues(t *testing.T) {
	t.Parallel()
	b := setupCLI(t)
	var created map[string]any
	res := b.run(t, "", "subscriptions", "create", "--url", "https://93.184.216.34/hook", "--header", "Authorization=Bearer rotate_h10", "--json")
	require.Equal(t, 0, res.code, res.stderr)
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &created))
	res = b.run(t, "", "subscriptions", "create", "--url", "https://93.184.216.34/legacy", "--json")
	require.Equal(t, 0, res.code, res.stderr)
	var legacy map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &legacy))
	makePlaintext(t, b.schema, legacy["id"].(string), map[string]string{"X-Api-Key": "legacy_h10"})
	before := subscriptionRows(t, b.schema)
	require.Contains(t, before, "legacy_h10")

	oldKey := b.env["OUTBOXD_ENCRYPTION_KEY"]
	raw := make([]byte, 32)
	_, err := rand.Read(raw)
	require.NoError(t, err)
	b.env["OUTBOXD_ENCRYPTION_KEY"] = base64.StdEncoding.EncodeToString(raw)
	b.env["OUTBOXD_ENCRYPTION_KEYS_OLD"] = oldKey
	res = b.run(t, "", "keys", "rotate", "--json")
	require.Equal(t, 0, res.code, res.stderr)
	var result struct {
		Resealed         int64            `json:"resealed"`
		HeadersResealed  int64            `json:"headers_resealed"`
		KeyID            string           `json:"key_id"`
		HeadersRemaining map[string]int64 `json:"headers_remaining"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &result))
	require.EqualValues(t, 2, result.Resealed)
	require.EqualValues(t, 2, result.HeadersResealed, "one moved to the new key, one sealed for the first time")
	require.Equal(t, map[string]int64{result.KeyID: 2}, result.HeadersRemaining)
	after := subscriptionRows(t, b.schema)
	require.NotContains(t, after, "legacy_h10")
	require.NotContains(t, after, "rotate_h10")

	res = b.run(t, "", "keys", "rotate")
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "done: 0 secrets and the header values of 0 subscriptions re-encrypted")
}

// Values written before migration 7 keep working; `migrate up` encrypts them
// with the key and complains without it; rolling back past 7 needs the key.
func TestMigrateEncryptsPlaintextHeaderValues(t *testing.T) {
	t.Parallel()
	b := setupCLI(t)
	res := b.run(t, "", "subscriptions", "create", "--url", "https://93.184.216.34/hook", "--header", "Authorization=Bearer migrate_h10", "--json")
	require.Equal(t, 0, res.code, res.stderr)
	var created map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &created))
	id := created["id"].(string)

	key := b.env["OUTBOXD_ENCRYPTION_KEY"]
	delete(b.env, "OUTBOXD_ENCRYPTION_KEY")
	res = b.run(t, "", "migrate", "down", "--all", "--yes")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "1 subscriptions have encrypted custom header values")
	require.Contains(t, res.stderr, "set OUTBOXD_ENCRYPTION_KEY")
	require.Contains(t, b.run(t, "", "migrate", "status").stdout, "up to date", "nothing was rolled back")

	b.env["OUTBOXD_ENCRYPTION_KEY"] = key
	makePlaintext(t, b.schema, id, map[string]string{"Authorization": "Bearer migrate_h10"})
	delete(b.env, "OUTBOXD_ENCRYPTION_KEY")
	res = b.run(t, "", "migrate", "up")
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stderr, "warning: 1 subscriptions keep custom header values (often credentials) in plaintext")
	require.Contains(t, subscriptionRows(t, b.schema), "migrate_h10")

	b.env["OUTBOXD_ENCRYPTION_KEY"] = key
	res = b.run(t, "", "migrate", "up")
	require.Equal(t, 0, res.code, res.stderr)
	require.Empty(t, res.stderr)
	require.Contains(t, res.stdout, "Encrypted the custom header values of 1 subscriptions")
	require.NotContains(t, subscriptionRows(t, b.schema), "migrate_h10")
}

// A daemon encrypts plaintext values when it starts, and delivers them.
func TestDaemonStartEncryptsPlaintextHeaderValues(t *testing.T) {
	t.Parallel()
	b := newProcessBundle(t)
	got := make(chan http.Header, 10)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(receiver.Close)
	sub := outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{URL: receiver.URL})
	makePlaintext(t, b.store.Schema(), sub.ID, map[string]string{"Authorization": "Bearer daemon_h10"})
	require.Contains(t, subscriptionRows(t, b.store.Schema()), "daemon_h10")

	daemon := b.startDaemon(t)
	b.publish(t, 1)
	select {
	case header := <-got:
		require.Equal(t, "Bearer daemon_h10", header.Get("Authorization"))
	case <-time.After(60 * time.Second):
		t.Fatalf("no delivery; the daemon's log:\n%s", daemon.log())
	}
	require.NotContains(t, subscriptionRows(t, b.store.Schema()), "daemon_h10", "sealed before the daemon started")
	require.Contains(t, daemon.log(), "encrypted custom header values kept in plaintext before")
}
