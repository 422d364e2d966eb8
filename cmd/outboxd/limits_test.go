package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The CLI reports a broken limit as the API does, through the store's errors:
// the field and the limit, never a constraint's name.
func TestCLIErrorsNameFieldAndLimit(t *testing.T) {
	t.Parallel()

	b := setupCLI(t)
	allow := []string{"--allow-private-targets", "127.0.0.0/8"}
	res := b.run(t, "", append([]string{"subscriptions", "create", "--url", "http://127.0.0.1:9/", "--json"}, allow...)...)
	require.Equal(t, 0, res.code, res.stderr)
	id := strings.Split(strings.Split(res.stdout, `"id":"`)[1], `"`)[0]

	tests := []struct {
		args []string
		want string
	}{
		{append([]string{"subscriptions", "create", "--url", "http://127.0.0.1:9/", "--description", strings.Repeat("d", 20_000)}, allow...), "outboxd: --description: at most 1024 characters\n"},
		{[]string{"subscriptions", "update", id, "--description", strings.Repeat("d", 1025)}, "outboxd: subscription " + id + ": --description: at most 1024 characters\n"},
		{append([]string{"subscriptions", "create", "--url", "http://127.0.0.1:9/", "--agent", strings.Repeat("a", 256)}, allow...), "outboxd: --agent: 1 to 255 characters\n"},
		{[]string{"publish", "--type", "a.b", "--idempotency-key", strings.Repeat("k", 256)}, "outboxd: --idempotency-key: 1 to 255 characters\n"},
		{[]string{"tokens", "create", "--org", "o", "--name", strings.Repeat("n", 201)}, "outboxd: --name: at most 200 characters\n"},
		{[]string{"tokens", "create", "--org", strings.Repeat("o", 256)}, "outboxd: --org: 1 to 255 characters\n"},
		{[]string{"publish", "--type", "a.b", "--data", `{"step":{"note":"\u0000"}}`}, "outboxd: --data at step.note: must not contain NUL characters (\\u0000): jsonb cannot store them\n"},
	}
	for _, tt := range tests {
		res := b.run(t, "", tt.args...)
		require.Equal(t, 1, res.code, tt.args[:2])
		require.Equal(t, tt.want, res.stderr, tt.args[:2])
	}
}
