package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/outboxtest"
)

func TestPortalCommands(t *testing.T) {
	t.Parallel()
	b := setupCLI(t)

	res := b.run(t, "", "portal", "link")
	require.Equal(t, 1, res.code)
	require.Equal(t, "outboxd: --org is required: a portal shows one organization\n", res.stderr)
	res = b.run(t, "", "portal", "link", "--org", "org-1", "--expires-in", "10s")
	require.Equal(t, 1, res.code)
	require.Equal(t, "outboxd: --expires-in: from 1m to 720h (30 days)\n", res.stderr)

	res = b.run(t, "", "portal", "link", "--org", "org-1", "--agent", "agent-1", "--public-url", "https://hooks.example.com/")
	require.Equal(t, 0, res.code, res.stderr)
	link := strings.TrimSpace(res.stdout)
	require.True(t, strings.HasPrefix(link, "https://hooks.example.com/portal/open?token=obxl_"), link)
	require.Contains(t, res.stderr, "the link opens once")

	// The link opens once, into org-1's session narrowed to agent-1.
	token := strings.TrimPrefix(link, "https://hooks.example.com/portal/open?token=")
	store, err := outbox.NewStore(outboxtest.Pool(t), &outbox.StoreConfig{Schema: b.schema})
	require.NoError(t, err)
	opened, err := store.PortalSessionOpen(context.Background(), token, "test")
	require.NoError(t, err)
	require.Equal(t, "org-1", opened.OrganizationID)
	require.Equal(t, "agent-1", opened.AgentID)

	res = b.run(t, "", "portal", "link", "--org", "org-2", "--json")
	require.Equal(t, 0, res.code, res.stderr)
	var created map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &created))
	id, _ := created["id"].(string)
	require.True(t, strings.HasPrefix(created["url"].(string), "http://127.0.0.1:8080/portal/open?token=obxl_"))

	res = b.run(t, "", "portal", "list")
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, id)
	require.Contains(t, res.stdout, "open")
	require.NotContains(t, res.stdout, "obxl_")

	res = b.run(t, "", "portal", "revoke", id)
	require.Equal(t, 0, res.code, res.stderr)
	require.NotContains(t, b.run(t, "", "portal", "list").stdout, id)
	require.Contains(t, b.run(t, "", "portal", "list", "--all").stdout, id)
	res = b.run(t, "", "portal", "revoke", "psn_nope")
	require.Equal(t, 1, res.code)
	require.Equal(t, "outboxd: portal session psn_nope: not found\n", res.stderr)
}

// The portal's read-only views are in the CLI too.
func TestPortalViewCommands(t *testing.T) {
	t.Parallel()
	b := setupCLI(t)
	require.Equal(t, 0, b.run(t, "", "migrate", "up").code)
	res := b.run(t, "", "subscriptions", "create", "--url", "https://example.com/hooks", "--org", "org-1", "--json")
	require.Equal(t, 0, res.code, res.stderr)
	var sub map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &sub))
	require.Equal(t, 0, b.run(t, "", "publish", "--type", "agent.step.completed", "--org", "org-1").code)

	res = b.run(t, "", "subscriptions", "stats", sub["id"].(string))
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "last 24 h: 0 deliveries")
	res = b.run(t, "", "subscriptions", "stats", "sub_nope")
	require.Equal(t, 1, res.code)
	require.Equal(t, "outboxd: subscription sub_nope: not found\n", res.stderr)

	res = b.run(t, "", "events", "types", "--org", "org-1")
	require.Equal(t, 0, res.code, res.stderr)
	lines := strings.Split(res.stdout, "\n")
	require.Contains(t, lines[1], "agent.step.completed")
	require.NotContains(t, lines[1], " - ", "seen just now")
	require.Contains(t, lines[2], "agent.step.failed")
	require.Contains(t, lines[2], " - ")

	res = b.run(t, "", "system")
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "relay backlog: 1 events")
}
