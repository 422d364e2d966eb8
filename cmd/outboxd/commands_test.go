package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/jobs"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/outboxtest"
	"github.com/outboxd/outboxd/outbox/secretbox"
)

// commandGroups returns the path of every command that has subcommands, as the
// root builds them (cobra's own completion command included).
func commandGroups(t *testing.T) [][]string {
	t.Helper()
	root := newRootCommand(&app{lookupEnv: func(string) (string, bool) { return "", false }, stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard})
	var groups [][]string
	var walk func(cmd *cobra.Command, path []string)
	walk = func(cmd *cobra.Command, path []string) {
		if cmd.HasSubCommands() {
			groups = append(groups, path)
		}
		for _, sub := range cmd.Commands() {
			walk(sub, append(append([]string{}, path...), sub.Name()))
		}
	}
	walk(root, nil)
	return groups
}

func TestUnknownSubcommandsFailWithASuggestion(t *testing.T) {
	t.Parallel()

	groups := commandGroups(t)
	require.GreaterOrEqual(t, len(groups), 10, "every command group is checked: %v", groups)
	for _, group := range groups {
		res := runCLI(t, map[string]string{}, "", append(append([]string{}, group...), "frob")...)
		require.Equal(t, 1, res.code, "outboxd %v frob", group)
		require.Contains(t, res.stderr, fmt.Sprintf(`unknown command "frob" for %q`, strings.Join(append([]string{"outboxd"}, group...), " ")), group)
		require.Empty(t, res.stdout, "no help on stdout for a mistake: %v", group)

		// The group alone still shows its help.
		res = runCLI(t, map[string]string{}, "", group...)
		require.Equal(t, 0, res.code, "outboxd %v", group)
		require.Contains(t, res.stdout, "Available Commands:", group)
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"nosuchcmd"}, `outboxd: unknown command "nosuchcmd" for "outboxd"; run 'outboxd --help' for the commands`},
		{[]string{"subscriptions", "lst"}, `outboxd: unknown command "lst" for "outboxd subscriptions"; did you mean "list"`},
		{[]string{"subscription", "frob"}, `unknown command "frob" for "outboxd subscriptions"; its commands are create, delete, disable, enable, get, list, rotate-secret, stats, test, update`},
		{[]string{"migrate", "dwon"}, `did you mean "down"?`},
		{[]string{"agents", "webhook", "gte"}, `unknown command "gte" for "outboxd agents webhook"; did you mean "get"?`},
		{[]string{"help", "frob"}, `outboxd: unknown command "frob" for "outboxd"`},
		{[]string{"help", "subscriptions", "frob"}, `unknown command "frob" for "outboxd subscriptions"`},
	} {
		res := runCLI(t, map[string]string{}, "", tt.args...)
		require.Equal(t, 1, res.code, tt.args)
		require.Contains(t, res.stderr, tt.want, tt.args)
	}

	res := runCLI(t, map[string]string{}, "", "help", "subscriptions", "get")
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "outboxd subscriptions get ID")
}

func TestSubscriptionsGet(t *testing.T) {
	t.Parallel()

	b := setupCLI(t)
	res := b.run(t, "", "subscriptions", "create", "--url", "https://93.184.216.34/hook", "--events", "agent.step.*,agent.run.completed",
		"--agent", "agent-1", "--org", "org-1", "--description", "billing", "--retry-schedule", "1s,5s", "--rate-limit", "7",
		"--header", "X-Team=payments", "--json")
	require.Equal(t, 0, res.code, res.stderr)
	var created map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &created))
	id := created["id"].(string)

	res = b.run(t, "", "subscriptions", "get", id)
	require.Equal(t, 0, res.code, res.stderr)
	for _, want := range []string{
		"subscription " + id, "https://93.184.216.34/hook", "agent.step.*,agent.run.completed", "agent-1", "org-1", "billing",
		"1s,5s", "7/s", "X-Team", "enabled:", "yes",
	} {
		require.Contains(t, res.stdout, want)
	}
	require.NotContains(t, res.stdout, "whsec_", "get never shows the secret")
	require.NotContains(t, res.stdout, "payments", "header values are not shown: they may be credentials")

	res = b.run(t, "", "subscriptions", "get", id, "--json")
	require.Equal(t, 0, res.code, res.stderr)
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &got))
	require.Equal(t, id, got["id"])
	require.Equal(t, []any{"agent.step.*", "agent.run.completed"}, got["event_types"])
	require.NotContains(t, res.stdout, "whsec_")

	res = b.run(t, "", "subscriptions", "get", "sub_nope")
	require.Equal(t, 1, res.code)
	require.Equal(t, "outboxd: subscription sub_nope: not found\n", res.stderr)
	res = b.run(t, "", "subscriptions", "get")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "accepts 1 arg(s)")
}

func TestSubscriptionsTestHonoursTheAllowListFromTheEnvironment(t *testing.T) {
	t.Parallel()

	b := setupCLI(t)
	var answers atomic.Int64
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		answers.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(receiver.Close)

	b.env["OUTBOXD_ALLOW_PRIVATE_TARGETS"] = "127.0.0.0/8"
	res := b.run(t, "", "subscriptions", "create", "--url", receiver.URL, "--json")
	require.Equal(t, 0, res.code, res.stderr)
	var sub map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &sub))

	res = b.run(t, "", "subscriptions", "test", sub["id"].(string))
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "delivered: 204")
	require.EqualValues(t, 1, answers.Load())

	// The flag wins over the environment, as everywhere.
	res = b.run(t, "", "subscriptions", "test", sub["id"].(string), "--allow-private-targets", "10.0.0.0/8")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "blocked_address")
	require.EqualValues(t, 1, answers.Load())

	res = b.run(t, "", "subscriptions", "test", "--help")
	require.Contains(t, res.stdout, "OUTBOXD_ALLOW_PRIVATE_TARGETS")
}

func TestValidationErrorsNameTheFlag(t *testing.T) {
	t.Parallel()

	b := setupCLI(t)
	res := b.run(t, "", "subscriptions", "create", "--url", "https://93.184.216.34/hook", "--json")
	require.Equal(t, 0, res.code, res.stderr)
	var sub map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &sub))
	id := sub["id"].(string)

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"subscriptions", "create", "--url", "https://93.184.216.34/", "--events", "Agent.Step"}, `outboxd: --events: "Agent.Step" is not an event type`},
		{[]string{"subscriptions", "create", "--url", "http://127.0.0.1:9/"}, "outboxd: --url: 127.0.0.1 is a loopback address"},
		{[]string{"subscriptions", "create", "--url", "https://93.184.216.34/", "--agent", strings.Repeat("a", 300)}, "outboxd: --agent: "},
		{[]string{"subscriptions", "create", "--url", "https://93.184.216.34/", "--org", strings.Repeat("o", 300)}, "outboxd: --org: "},
		{[]string{"subscriptions", "create", "--url", "https://93.184.216.34/", "--header", "Bad Name=x"}, "outboxd: --header: "},
		{[]string{"subscriptions", "create", "--url", "https://93.184.216.34/", "--ordering", "sideways"}, `outboxd: --ordering: "sideways" is not an ordering: none or agent`},
		{[]string{"subscriptions", "create", "--url", "https://93.184.216.34/", "--on-dead", "retry"}, `outboxd: --on-dead: "retry" is not a choice: block or skip`},
		{[]string{"subscriptions", "create", "--url", "https://93.184.216.34/", "--max-in-flight", "-1"}, "outboxd: --max-in-flight: deliveries in flight at once"},
		{[]string{"subscriptions", "update", id, "--events", "Agent.Step"}, `outboxd: subscription ` + id + `: --events: "Agent.Step" is not an event type`},
		{[]string{"subscriptions", "update", id, "--rate-limit", "-3"}, "outboxd: subscription " + id + ": --rate-limit: deliveries per second"},
		{[]string{"subscriptions", "rotate-secret", id, "--grace", "200h"}, "outboxd: subscription " + id + ": --grace: must be more than 0"},
		{[]string{"agents", "webhook", "set", "agent-9", "--url", "https://93.184.216.34/", "--events", "Agent.Step"}, `outboxd: agent agent-9: --events: "Agent.Step" is not an event type`},
		{[]string{"agents", "webhook", "set", "", "--url", "https://93.184.216.34/"}, "outboxd: agent : AGENT_ID: required"},
		{[]string{"publish", "--type", "Agent.Step"}, "outboxd: --type: invalid event type 'Agent.Step'"},
		{[]string{"publish", "--type", "agent.step.completed", "--data", "[1,2]"}, "outboxd: --data: event payload must be a JSON object, not array"},
		{[]string{"publish", "--type", "agent.step.completed", "--agent", strings.Repeat("a", 300)}, "outboxd: --agent: "},
		{[]string{"publish", "--type", "agent.step.completed", "--idempotency-key", strings.Repeat("k", 300)}, "outboxd: --idempotency-key: "},
	} {
		res := b.run(t, "", tt.args...)
		require.Equal(t, 1, res.code, tt.args)
		require.Contains(t, res.stderr, tt.want, tt.args)
		for _, field := range []string{"event_types:", "agent_id:", "organization_id:", "payload:", "headers:", "on_dead:", "max_in_flight:", "rate_limit:", "idempotency_key:"} {
			require.NotContains(t, res.stderr, field, "the API's field name leaks into the CLI: %v", tt.args)
		}
	}
}

// TestListsPageAlike checks one paging convention on every list command: --limit
// from 1 to outbox.ListLimitMax and --cursor, with the next cursor printed.
func TestListsPageAlike(t *testing.T) {
	t.Parallel()

	b := setupCLI(t)
	deliverEvents(t, b, 3)
	for range 3 {
		require.Equal(t, 0, b.run(t, "", "tokens", "create", "--org", "org-1").code)
	}
	for range 2 { // and the one deliverEvents made
		require.Equal(t, 0, b.run(t, "", "subscriptions", "create", "--url", "https://93.184.216.34/hook").code)
	}

	for _, list := range [][]string{{"events", "list"}, {"deliveries", "list"}, {"subscriptions", "list"}, {"tokens", "list"}} {
		help := b.run(t, "", append(list, "--help")...)
		require.Equal(t, 0, help.code)
		require.Contains(t, help.stdout, "--limit int", list)
		require.Contains(t, help.stdout, "1 to 500", list)
		require.Contains(t, help.stdout, "--cursor string", list)

		for _, bad := range []string{"5000", "501", "0", "-1"} {
			res := b.run(t, "", append(list, "--limit", bad)...)
			require.Equal(t, 1, res.code, list, bad)
			require.Equal(t, fmt.Sprintf("outboxd: --limit: %s is out of range: 1 to 500\n", bad), res.stderr, list)
		}
		res := b.run(t, "", append(list, "--cursor", "not a cursor!")...)
		require.Equal(t, 1, res.code, list)
		require.Contains(t, res.stderr, "outboxd: --cursor: not a cursor outboxd printed", list)

		// Three rows of each, two pages.
		const total = 3
		var seen []string
		var cursor string
		for page := 0; ; page++ {
			args := append(append([]string{}, list...), "--limit", "2", "--json")
			if cursor != "" {
				args = append(args, "--cursor", cursor)
			}
			res := b.run(t, "", args...)
			require.Equal(t, 0, res.code, res.stderr)
			var got struct {
				Data       []map[string]any `json:"data"`
				NextCursor *string          `json:"next_cursor"`
			}
			require.NoError(t, json.Unmarshal([]byte(res.stdout), &got), res.stdout)
			for _, item := range got.Data {
				seen = append(seen, fmt.Sprint(item["id"]))
			}
			if got.NextCursor == nil {
				break
			}
			require.Less(t, page, 3, "paging ends")
			cursor = *got.NextCursor
		}
		require.Len(t, seen, total, list)
		for i := range seen {
			for j := range i {
				require.NotEqual(t, seen[i], seen[j], "no row shows twice across pages: %v", list)
			}
		}

		// The table says how to go on, on stderr so that stdout stays a table.
		res = b.run(t, "", append(list, "--limit", "1")...)
		require.Equal(t, 0, res.code, res.stderr)
		require.Regexp(t, `^more: outboxd `+strings.Join(list, " ")+` --limit 1 --cursor \S+\n$`, res.stderr, list)
		require.Equal(t, 2, strings.Count(res.stdout, "\n"), "a header and one row: %v", list)
		res = b.run(t, "", append(list, "--limit", "3")...)
		require.Equal(t, 0, res.code, res.stderr)
		require.Empty(t, res.stderr, "the last page says nothing more")
	}
}

// deliverEvents subscribes a receiver, publishes n events and runs a daemon until
// they are delivered.
func deliverEvents(t *testing.T, b *cliBundle, n int) {
	t.Helper()
	ctx := context.Background()
	key, err := secretbox.ParseKey(b.key)
	require.NoError(t, err)
	store, err := outbox.NewStore(outboxtest.Pool(t), &outbox.StoreConfig{Schema: b.schema, Keyring: secretbox.NewKeyring(key), Guard: outboxtest.LoopbackGuard()})
	require.NoError(t, err)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(receiver.Close)
	outboxtest.Subscription(ctx, t, store, &outboxtest.SubscriptionOpts{URL: receiver.URL})
	for range n {
		outboxtest.Event(ctx, t, store, nil)
	}
	daemon, err := jobs.NewDaemon(outboxtest.NewPool(t, 8), &jobs.Config{
		Store: store, Guard: outboxtest.LoopbackGuard(),
		Relay: jobs.RelayConfig{PollInterval: 20 * time.Millisecond}, FetchPollInterval: 50 * time.Millisecond,
	})
	require.NoError(t, err)
	require.NoError(t, daemon.Start(ctx))
	defer func() {
		stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		require.NoError(t, daemon.Stop(stopCtx))
	}()
	require.Eventually(t, func() bool {
		delivered, err := store.DeliveryList(ctx, &outbox.DeliveryListParams{State: outbox.DeliveryDelivered})
		return err == nil && len(delivered) == n
	}, 30*time.Second, 20*time.Millisecond)
}
