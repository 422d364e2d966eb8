package outbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/outboxtest"
)

// jsonb cannot hold U+0000: a payload with \u0000 in any string is refused in
// Go, naming where it is, before it reaches the database; text escaping a
// backslash (\\u0000) is ordinary text and is published.
func TestPublishRefusesNULInPayload(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	store := outboxtest.Store(t)
	tests := []struct {
		name, payload, field, message string
	}{
		{"Value", `{"a":"x\u0000y"}`, "payload.a", `must not contain NUL characters (\u0000)`},
		{"Deep", `{"a":{"b c":[1,"ok",{"d":["\u0000"]}]}}`, `payload.a["b c"][2].d[0]`, `must not contain NUL characters (\u0000)`},
		{"Key", `{"ok":"\\u0000","k\u0000":1}`, `payload["k\u0000"]`, `a key must not contain NUL characters (\u0000)`},
		{"AfterContainers", `{"a":[[],{}],"b":{"c":[]},"e":"\u0000"}`, "payload.e", "NUL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			_, err := store.Publish(ctx, &outbox.PublishParams{Type: "a.b", Payload: json.RawMessage(tt.payload)})
			requireValidationError(t, err, tt.field, tt.message)

			tx := begin(ctx, t, outboxtest.Pool(t))
			_, err = store.PublishTx(ctx, tx, &outbox.PublishParams{Type: "a.b", Payload: json.RawMessage(tt.payload)})
			requireValidationError(t, err, tt.field, tt.message)
			require.NoError(t, tx.Rollback(ctx), "the transaction is still usable: nothing reached the database")
		})
	}
	require.Zero(t, countRows(ctx, t, store, "events"))

	event, err := store.Publish(ctx, &outbox.PublishParams{Type: "a.b", Payload: json.RawMessage(`{"path":"C:\\u0000","k\\u0000":"\\\\u0000"}`)})
	require.NoError(t, err, "escaped backslashes are text")
	require.JSONEq(t, `{"path":"C:\\u0000","k\\u0000":"\\\\u0000"}`, string(event.Payload))

	// What only Postgres notices (a lone surrogate) is still a ValidationError on
	// the payload, not an internal error.
	_, err = store.Publish(ctx, &outbox.PublishParams{Type: "a.b", Payload: json.RawMessage(`{"a":"\ud800"}`)})
	requireValidationError(t, err, "payload", "Unicode low surrogate must follow a high surrogate")
}

// Around the store, Postgres' own refusals of NUL (22P05 in jsonb, 22021 in
// text) translate to ValidationErrors too.
func TestNULRefusedByPostgresIsAValidationError(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	store := outboxtest.Store(t)
	for _, sql := range []string{
		`INSERT INTO %s.events (type, payload) VALUES ('a.b', '{"a":"\u0000"}')`,
		`INSERT INTO %s.events (type, agent_id) VALUES ('a.b', $1)`,
	} {
		var args []any
		if len(sql) > 0 && sql[len(sql)-2] == '1' {
			args = []any{"a\x00b"}
		}
		_, err := outboxtest.Pool(t).Exec(ctx, fmt.Sprintf(sql, store.Schema()), args...)
		requireValidationError(t, outbox.TranslateError("publish", err), "", "must not contain NUL characters")
	}
}
