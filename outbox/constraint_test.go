package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/outboxtest"
)

// Every named rule of outboxd's tables, broken by a statement that goes around
// the store, comes back as a ValidationError naming the API's field and the
// limit. A new constraint without a row here, or without a rule in errors.go,
// fails the test.
func TestEveryConstraintNamesItsFieldAndLimit(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	store := outboxtest.Store(t)
	pool := outboxtest.Pool(t)
	schema := store.Schema()
	event := outboxtest.Event(ctx, t, store, nil)
	sub := outboxtest.Subscription(ctx, t, store, nil)

	tests := []struct {
		constraint string
		sql        string // %[1]s is the schema
		want       string // the ValidationError's text
		field      string
	}{
		{"settings_singleton", "INSERT INTO %[1]s.settings (singleton) VALUES (false)", "settings: holds exactly one row", "settings"},
		{"settings_event_id_tag", "UPDATE %[1]s.settings SET event_id_tag = 'XYZ'", "event_id_tag: 8 lower-case hex digits", "event_id_tag"},
		{"settings_event_partition_interval", "UPDATE %[1]s.settings SET event_partition_interval = '7 minutes'", "event_partition_interval: whole minutes that divide a day, from 1 minute to 1 day", "event_partition_interval"},
		{"settings_max_payload_bytes", "UPDATE %[1]s.settings SET max_payload_bytes = 1", "max_payload_bytes: 2 to 67108864 bytes", "max_payload_bytes"},
		{"events_organization_id_length", "INSERT INTO %[1]s.events (type, organization_id) VALUES ('a.b', '')", "organization_id: 1 to 255 characters", "organization_id"},
		{"events_agent_id_length", "INSERT INTO %[1]s.events (type, agent_id) VALUES ('a.b', repeat('a', 256))", "agent_id: 1 to 255 characters", "agent_id"},
		{"events_idempotency_key_length", "INSERT INTO %[1]s.events (type, idempotency_key) VALUES ('a.b', '')", "idempotency_key: 1 to 255 characters", "idempotency_key"},
		{"subscriptions_url_scheme", "INSERT INTO %[1]s.subscriptions (url) VALUES ('file:///etc/passwd')", "url: an http or https URL of at most 2048 characters", "url"},
		{"subscriptions_event_types_valid", "INSERT INTO %[1]s.subscriptions (url, event_types) VALUES ('https://1.1.1.1/', '{Agent.*}')", "event_types: 1 to 100 patterns, each an event type (agent.step.completed), a prefix (agent.step.*) or *", "event_types"},
		{"subscriptions_organization_id_length", "INSERT INTO %[1]s.subscriptions (url, organization_id) VALUES ('https://1.1.1.1/', '')", "organization_id: 1 to 255 characters", "organization_id"},
		{"subscriptions_agent_id_length", "INSERT INTO %[1]s.subscriptions (url, agent_id) VALUES ('https://1.1.1.1/', '')", "agent_id: 1 to 255 characters", "agent_id"},
		{"subscriptions_description_length", "INSERT INTO %[1]s.subscriptions (url, description) VALUES ('https://1.1.1.1/', repeat('x', 20000))", "description: at most 1024 characters", "description"},
		{"subscriptions_headers_object", "INSERT INTO %[1]s.subscriptions (url, headers) VALUES ('https://1.1.1.1/', '[]')", "headers: must be a JSON object of names and values", "headers"},
		{"subscriptions_retry_schedule_valid", "INSERT INTO %[1]s.subscriptions (url, retry_schedule_ms) VALUES ('https://1.1.1.1/', '{1000,0}')", "retry_schedule: at most 50 delays, each longer than 0", "retry_schedule"},
		{"subscriptions_agent_webhook_agent", "INSERT INTO %[1]s.subscriptions (url, agent_webhook) VALUES ('https://1.1.1.1/', true)", "agent_id: required for an agent's webhook", "agent_id"},
		{"subscriptions_rate_limit", "INSERT INTO %[1]s.subscriptions (url, rate_limit_per_second) VALUES ('https://1.1.1.1/', 0)", "rate_limit: 1 to 100000 deliveries per second (0 for no limit)", "rate_limit"},
		{"subscriptions_max_in_flight", "INSERT INTO %[1]s.subscriptions (url, max_in_flight) VALUES ('https://1.1.1.1/', 10001)", "max_in_flight: 1 to 10000 deliveries at once (0 for the daemon's default)", "max_in_flight"},
		{"subscriptions_ordering", "UPDATE %[1]s.subscriptions SET ordering = 'global'", "ordering: none or agent", "ordering"},
		{"subscriptions_on_dead", "UPDATE %[1]s.subscriptions SET on_dead = 'retry'", "on_dead: block or skip", "on_dead"},
		{"api_tokens_organization_id_length", "INSERT INTO %[1]s.api_tokens (organization_id, prefix, digest) VALUES ('', 'obx_', '\\x00')", "organization_id: 1 to 255 characters", "organization_id"},
		{"web_sessions_organization_id_length", "INSERT INTO %[1]s.web_sessions (organization_id, token_digest, expires_at) VALUES ('', '\\x01', now() + interval '1h')", "organization_id: 1 to 255 characters", "organization_id"},
		{"web_sessions_agent_id_length", "INSERT INTO %[1]s.web_sessions (organization_id, agent_id, token_digest, expires_at) VALUES ('o', repeat('a', 256), '\\x01', now() + interval '1h')", "agent_id: 1 to 255 characters", "agent_id"},
		{"web_sessions_user_agent_length", "INSERT INTO %[1]s.web_sessions (organization_id, user_agent, token_digest, expires_at) VALUES ('o', repeat('u', 513), '\\x01', now() + interval '1h')", "user_agent: at most 512 characters", "user_agent"},
		{"web_sessions_expiry", "INSERT INTO %[1]s.web_sessions (organization_id, token_digest, expires_at) VALUES ('o', '\\x01', now())", "lifetime: must be positive", "lifetime"},
		{"web_sessions_agent_in_organization", "INSERT INTO %[1]s.web_sessions (agent_id, admin_token_digest, token_digest, expires_at) VALUES ('a', '\\x02', '\\x01', now() + interval '1h')", "agent_id: only for an organization's session", "agent_id"},
		{"web_sessions_admin_credential", "INSERT INTO %[1]s.web_sessions (token_digest, expires_at) VALUES ('\\x01', now() + interval '1h')", "admin_token_digest: required for an admin session (no organization_id)", "admin_token_digest"},
		{"portal_sessions_organization_id_length", "INSERT INTO %[1]s.portal_sessions (organization_id, link_digest, expires_at) VALUES ('', '\\x01', now() + interval '1h')", "organization_id: 1 to 255 characters", "organization_id"},
		{"portal_sessions_agent_id_length", "INSERT INTO %[1]s.portal_sessions (organization_id, agent_id, link_digest, expires_at) VALUES ('o', repeat('a', 256), '\\x01', now() + interval '1h')", "agent_id: 1 to 255 characters", "agent_id"},
		{"portal_sessions_created_by_length", "INSERT INTO %[1]s.portal_sessions (organization_id, created_by, link_digest, expires_at) VALUES ('o', repeat('c', 256), '\\x01', now() + interval '1h')", "created_by: at most 255 characters", "created_by"},
		{"portal_sessions_expiry", "INSERT INTO %[1]s.portal_sessions (organization_id, link_digest, expires_at) VALUES ('o', '\\x01', now())", "expires_in: must be positive", "expires_in"},
		{"subscriptions_headers_sealed", "INSERT INTO %[1]s.subscriptions (url, headers_key_id) VALUES ('https://1.1.1.1/', 'k')", "headers: sealed values need both their key id and their ciphertext", "headers"},
		{"subscriptions_header_values", "INSERT INTO %[1]s.subscriptions (url, header_names) VALUES ('https://1.1.1.1/', '{X-A}')", "headers: every header name needs its value", "headers"},
		{"api_tokens_name_length", "INSERT INTO %[1]s.api_tokens (organization_id, name, prefix, digest) VALUES ('o', repeat('n', 201), 'obx_', '\\x00')", "name: at most 200 characters", "name"},
	}
	// Rules whose checks raise their own message, with the offending value.
	raised := []struct {
		constraint string
		sql        string
		want       string
		field      string
	}{
		{"events_type_format", "INSERT INTO %[1]s.events (type) VALUES ('Bad')", "type: invalid event type 'Bad' (An event type is two or more dot-separated words of a-z, 0-9 and _, at most 200 characters, like agent.step.completed.)", "type"},
		{"events_type_reserved", "INSERT INTO %[1]s.events (type) VALUES ('outboxd.x.y')", "type: event type 'outboxd.x.y' is reserved: outboxd.* events are published by outboxd itself (Choose a type outside the outboxd. namespace.)", "type"},
		{"events_payload_object", "INSERT INTO %[1]s.events (type, payload) VALUES ('a.b', '[]')", `payload: event payload must be a JSON object, not array (Wrap the value in an object, like {"value": ...}.)`, "payload"},
		{"events_payload_size", "UPDATE %[1]s.settings SET max_payload_bytes = 10; INSERT INTO %[1]s.events (type, payload) VALUES ('a.b', '{\"abc\": 12345}')", "payload: event payload is 14 bytes, over the limit of 10 bytes (Send ids and small facts, not documents; the limit is %[1]s.settings.max_payload_bytes.)", "payload"},
	}

	run := func(t *testing.T, sql, field, want string) {
		t.Helper()
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
		_, err = tx.Exec(ctx, fmt.Sprintf(sql, schema))
		err = outbox.TranslateError("test", err)
		var validation *outbox.ValidationError
		require.True(t, errors.As(err, &validation), "%v", err)
		require.Equal(t, field, validation.Field)
		require.Equal(t, strings.ReplaceAll(want, "%[1]s", schema), validation.Error())
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.constraint, func(t *testing.T) {
			run(t, tt.sql, tt.field, tt.want)
		})
		covered[tt.constraint] = true
	}
	for _, tt := range raised {
		t.Run("Raised/"+tt.constraint, func(t *testing.T) {
			run(t, tt.sql, tt.field, tt.want)
		})
		covered[tt.constraint] = true
	}

	// Every check constraint on outboxd's tables (River's own are not user
	// input) has a row above and a rule in errors.go.
	rows, err := pool.Query(ctx, `
		SELECT c.conname FROM pg_constraint AS c
		JOIN pg_class AS r ON r.oid = c.conrelid
		JOIN pg_namespace AS n ON n.oid = r.relnamespace
		WHERE n.nspname = $1 AND c.contype = 'c' AND r.relname NOT LIKE 'river\_%'
		ORDER BY 1`, schema)
	require.NoError(t, err)
	var names []string
	for rows.Next() {
		var name string
		require.NoError(t, rows.Scan(&name))
		names = append(names, name)
	}
	require.NoError(t, rows.Err())
	require.NotEmpty(t, names)
	rules := outbox.ConstraintRules()
	for _, name := range names {
		require.True(t, covered[name], "constraint %s has no case in this test", name)
		require.Contains(t, rules, name, "constraint %s has no rule in errors.go", name)
	}
	for name := range rules {
		require.True(t, slices.Contains(names, name) || slices.ContainsFunc(raised, func(r struct{ constraint, sql, want, field string }) bool { return r.constraint == name }),
			"errors.go has a rule for %s, which no table has", name)
	}
	_, _ = event, sub
}
