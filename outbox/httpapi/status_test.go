package httpapi_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// goTypeName matches Go's names for types, which an answer must not show.
var goTypeName = regexp.MustCompile(`\bu?int(8|16|32|64)?\b|\bfloat(32|64)\b|\bbool\b|map\[|\[\]|\bstruct\b|httpapi\.|outbox\.|time\.Time`)

// fieldProblem returns the first entry of a problem's errors.
func fieldProblem(t *testing.T, r *response) (field, message string) {
	t.Helper()
	errs, _ := r.body["errors"].([]any)
	require.NotEmpty(t, errs, r.raw)
	first, _ := errs[0].(map[string]any)
	field, _ = first["field"].(string)
	message, _ = first["message"].(string)
	return field, message
}

// Each answer says what went wrong in the API's terms: the status code that
// means it, the field at fault, the limit broken, and never a Go type name.
func TestStatusCodesSayWhatWentWrong(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rcv := newReceiver(t, http.StatusNoContent)
	sub := b.createSubscription(t, map[string]any{"url": rcv.server.URL}).str("id")
	before := b.admin(t, "GET", "/v1/subscriptions", nil).raw

	t.Run("TooLarge", func(t *testing.T) {
		body := `{"type":"a.b","payload":{"x":"` + strings.Repeat("a", 2<<20) + `"}}`
		r := call(t, b.server, adminToken, "POST", "/v1/events", body)
		requireProblem(t, r, http.StatusRequestEntityTooLarge)
		require.Contains(t, r.str("detail"), "1048576 bytes")
	})

	t.Run("WrongMethod", func(t *testing.T) {
		for _, tt := range []struct{ method, path, allow string }{
			{"PUT", "/v1/subscriptions", "GET, HEAD, POST"},
			{"POST", "/v1/subscriptions/" + sub, "DELETE, GET, HEAD, PATCH"},
			{"GET", "/v1/subscriptions/" + sub + "/enable", "POST"},
			{"DELETE", "/v1/events/evt_x", "GET, HEAD"},
			{"PATCH", "/v1/agents/a/webhook", "DELETE, GET, HEAD, PUT"},
		} {
			r := call(t, b.server, adminToken, tt.method, tt.path, nil)
			requireProblem(t, r, http.StatusMethodNotAllowed)
			require.Equal(t, tt.allow, r.header.Get("Allow"), "%s %s", tt.method, tt.path)
			require.Contains(t, r.str("detail"), tt.allow)
		}
		requireProblem(t, call(t, b.server, adminToken, "PUT", "/v1/nothing", nil), http.StatusNotFound)
		requireProblem(t, call(t, b.server, "", "PUT", "/v1/subscriptions", nil), http.StatusUnauthorized)
	})

	t.Run("NotAnObject", func(t *testing.T) {
		for body, want := range map[string]string{
			`[1]`:   "the body must be a JSON object, not an array",
			`"url"`: "the body must be a JSON object, not a string",
			`42`:    "the body must be a JSON object, not a number",
		} {
			r := call(t, b.server, adminToken, "POST", "/v1/subscriptions", body)
			requireProblem(t, r, http.StatusBadRequest)
			require.Equal(t, want, r.str("detail"))
			require.NotRegexp(t, goTypeName, r.raw)
		}
	})

	t.Run("WrongFieldType", func(t *testing.T) {
		for _, tt := range []struct {
			method, path, body, field, message string
		}{
			{"POST", "/v1/subscriptions", `{"url": 42}`, "url", "expected a string, got a number"},
			{"POST", "/v1/subscriptions", `{"url": "https://1.1.1.1/", "rate_limit": "5"}`, "rate_limit", "expected an integer, got a string"},
			{"POST", "/v1/subscriptions", `{"url": "https://1.1.1.1/", "rate_limit": 1.5}`, "rate_limit", "expected an integer, got 1.5"},
			{"POST", "/v1/subscriptions", `{"url": "https://1.1.1.1/", "event_types": "*"}`, "event_types", "expected an array, got a string"},
			{"POST", "/v1/subscriptions", `{"url": "https://1.1.1.1/", "headers": ["a"]}`, "headers", "expected an object, got an array"},
			{"PATCH", "/v1/subscriptions/" + sub, `{"enabled": "yes"}`, "enabled", "expected true or false, got a string"},
			{"POST", "/v1/subscriptions/" + sub + "/recover", `{"since": "yesterday"}`, "since", "an RFC 3339 time like 2026-01-02T15:04:05Z"},
			{"POST", "/v1/subscriptions/" + sub + "/recover", `{"since": 5}`, "since", "an RFC 3339 time like 2026-01-02T15:04:05Z"},
		} {
			r := call(t, b.server, adminToken, tt.method, tt.path, tt.body)
			requireProblem(t, r, http.StatusUnprocessableEntity)
			field, message := fieldProblem(t, r)
			require.Equal(t, tt.field, field, r.raw)
			require.Equal(t, tt.message, message, r.raw)
			require.NotRegexp(t, goTypeName, r.raw)
		}
	})

	t.Run("RetrySchedule", func(t *testing.T) {
		for _, tt := range []struct {
			method, path, body, field, message string
		}{
			{"POST", "/v1/subscriptions", `{"url": "https://1.1.1.1/", "retry_schedule": ["abc"]}`, "retry_schedule[0]", `"abc" is not a duration like 5s, 5m or 2h`},
			{"POST", "/v1/subscriptions", `{"url": "https://1.1.1.1/", "retry_schedule": ["1s", "soon"]}`, "retry_schedule[1]", `"soon" is not a duration like 5s, 5m or 2h`},
			{"POST", "/v1/subscriptions", `{"url": "https://1.1.1.1/", "retry_schedule": "5s"}`, "retry_schedule", `a list of durations like ["5s","5m"]`},
			{"PATCH", "/v1/subscriptions/" + sub, `{"retry_schedule": ["5s", 7]}`, "retry_schedule", `a list of durations like ["5s","5m"]`},
			{"PATCH", "/v1/subscriptions/" + sub, `{"retry_schedule": ["abc"]}`, "retry_schedule[0]", `"abc" is not a duration like 5s, 5m or 2h`},
		} {
			r := call(t, b.server, adminToken, tt.method, tt.path, tt.body)
			requireProblem(t, r, http.StatusUnprocessableEntity)
			field, message := fieldProblem(t, r)
			require.Equal(t, tt.field, field, r.raw)
			require.Equal(t, tt.message, message, r.raw)
		}
	})

	t.Run("Limits", func(t *testing.T) {
		long := strings.Repeat("é", 1025)
		for _, tt := range []struct {
			method, path string
			body         map[string]any
			field, want  string
		}{
			{"POST", "/v1/subscriptions", map[string]any{"url": rcv.server.URL, "description": strings.Repeat("d", 20_000)}, "description", "description: at most 1024 characters"},
			{"POST", "/v1/subscriptions", map[string]any{"url": rcv.server.URL, "description": long}, "description", "description: at most 1024 characters"},
			{"PATCH", "/v1/subscriptions/" + sub, map[string]any{"description": long}, "description", "description: at most 1024 characters"},
			{"POST", "/v1/subscriptions", map[string]any{"url": rcv.server.URL, "agent_id": strings.Repeat("a", 256)}, "agent_id", "agent_id: 1 to 255 characters"},
			{"POST", "/v1/subscriptions", map[string]any{"url": rcv.server.URL, "organization_id": strings.Repeat("o", 256)}, "organization_id", "organization_id: 1 to 255 characters"},
			{"POST", "/v1/events", map[string]any{"type": "a.b", "agent_id": strings.Repeat("a", 256)}, "agent_id", "agent_id: 1 to 255 characters"},
			{"POST", "/v1/events", map[string]any{"type": "a.b", "idempotency_key": strings.Repeat("k", 256)}, "idempotency_key", "idempotency_key: 1 to 255 characters"},
			{"POST", "/v1/subscriptions", map[string]any{"url": rcv.server.URL, "description": "a\u0000b"}, "description", "description: must not contain NUL characters (\\u0000)"},
		} {
			r := b.admin(t, tt.method, tt.path, tt.body)
			requireProblem(t, r, http.StatusUnprocessableEntity)
			require.Equal(t, tt.want, r.str("detail"), r.raw)
			field, _ := fieldProblem(t, r)
			require.Equal(t, tt.field, field)
		}
		fits := b.admin(t, "POST", "/v1/subscriptions", map[string]any{"url": rcv.server.URL, "description": strings.Repeat("é", 1024)})
		require.Equal(t, http.StatusCreated, fits.status, "1024 characters fit, though they are 2048 bytes: %s", fits.raw)
		require.Equal(t, http.StatusNoContent, b.admin(t, "DELETE", "/v1/subscriptions/"+fits.str("id"), nil).status)
	})

	t.Run("NULInPayload", func(t *testing.T) {
		r := call(t, b.server, adminToken, "POST", "/v1/events", `{"type":"a.b","payload":{"text":"x\u0000y"}}`)
		requireProblem(t, r, http.StatusUnprocessableEntity)
		field, message := fieldProblem(t, r)
		require.Equal(t, "payload.text", field)
		require.Equal(t, `must not contain NUL characters (\u0000): jsonb cannot store them`, message)
		require.NotContains(t, b.logs.String(), "level=ERROR", "bad input is not a server error")

		ok := call(t, b.server, adminToken, "POST", "/v1/events", `{"type":"a.b","payload":{"text":"x\\u0000y"}}`)
		require.Equal(t, http.StatusCreated, ok.status, "an escaped backslash is text: %s", ok.raw)
	})

	require.Equal(t, before, b.admin(t, "GET", "/v1/subscriptions", nil).raw, "bad input changed nothing")
	require.Len(t, b.admin(t, "GET", "/v1/events", nil).list(), 1, "only the good event")
}
