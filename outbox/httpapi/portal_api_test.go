package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
)

// Portal sessions through the API: an organization's token makes links for
// its own organization only, lists and revokes only its own; bad input is a
// 422 naming the field and changes nothing.
func TestPortalSessionsAPI(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tokenA, err := b.store.TokenCreate(b.ctx, &outbox.TokenCreateParams{OrganizationID: "org-a"})
	require.NoError(t, err)
	tokenB, err := b.store.TokenCreate(b.ctx, &outbox.TokenCreateParams{OrganizationID: "org-b"})
	require.NoError(t, err)

	created := call(t, b.server, tokenA.Secret, "POST", "/v1/portal/sessions", map[string]any{"expires_in": "30m", "agent_id": "agent-1"})
	require.Equal(t, http.StatusCreated, created.status, created.raw)
	require.Equal(t, "org-a", created.str("organization_id"))
	require.Equal(t, "agent-1", created.str("agent_id"))
	require.Equal(t, "unopened", created.str("state"))
	require.Equal(t, "organization token", created.str("created_by"))
	require.Equal(t, "no-store", created.header.Get("Cache-Control"))
	require.True(t, strings.HasPrefix(created.str("url"), b.server.URL+"/portal/open?token=obxl_"), created.raw)
	id := created.str("id")

	r := b.admin(t, "POST", "/v1/portal/sessions", map[string]any{"organization_id": "org-b"})
	require.Equal(t, http.StatusCreated, r.status, r.raw)

	for _, tc := range []struct {
		token string
		body  map[string]any
		field string
	}{
		{tokenA.Secret, map[string]any{"organization_id": "org-b"}, "organization_id"},
		{adminToken, map[string]any{}, "organization_id"},
		{adminToken, map[string]any{"organization_id": "org-a", "expires_in": "forever"}, "expires_in"},
		{adminToken, map[string]any{"organization_id": "org-a", "expires_in": "721h"}, "expires_in"},
		{adminToken, map[string]any{"organization_id": "org-a", "agent_id": strings.Repeat("a", 256)}, "agent_id"},
	} {
		r := call(t, b.server, tc.token, "POST", "/v1/portal/sessions", tc.body)
		requireProblem(t, r, http.StatusUnprocessableEntity)
		require.Contains(t, r.raw, `"field":"`+tc.field+`"`)
	}
	requireProblem(t, call(t, b.server, "", "POST", "/v1/portal/sessions", map[string]any{"organization_id": "org-a"}), http.StatusUnauthorized)

	listA := call(t, b.server, tokenA.Secret, "GET", "/v1/portal/sessions", nil).list()
	require.Len(t, listA, 1, "org-a's two bad requests made nothing")
	require.Equal(t, id, listA[0]["id"])
	require.Empty(t, call(t, b.server, tokenA.Secret, "GET", "/v1/portal/sessions?organization_id=org-b", nil).list())
	require.Len(t, b.admin(t, "GET", "/v1/portal/sessions", nil).list(), 2)
	require.NotContains(t, b.admin(t, "GET", "/v1/portal/sessions", nil).raw, "obxl_", "links are shown once")

	// Another organization's session is 404, to read and to revoke.
	requireProblem(t, call(t, b.server, tokenB.Secret, "GET", "/v1/portal/sessions/"+id, nil), http.StatusNotFound)
	requireProblem(t, call(t, b.server, tokenB.Secret, "DELETE", "/v1/portal/sessions/"+id, nil), http.StatusNotFound)
	revoked := call(t, b.server, tokenA.Secret, "DELETE", "/v1/portal/sessions/"+id, nil)
	require.Equal(t, http.StatusOK, revoked.status, revoked.raw)
	require.Equal(t, "revoked", revoked.str("state"))
	resp, err := b.server.Client().Get(created.str("url"))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "a revoked link does not open")
	require.Empty(t, call(t, b.server, tokenA.Secret, "GET", "/v1/portal/sessions", nil).list())
	require.Len(t, call(t, b.server, tokenA.Secret, "GET", "/v1/portal/sessions?include_ended=true", nil).list(), 1)
}

// The portal's other views are API operations too: an endpoint's figures, the
// event catalog, and (for admins) the system's health.
func TestPortalViewsInTheAPI(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tokenA, err := b.store.TokenCreate(b.ctx, &outbox.TokenCreateParams{OrganizationID: "org-a"})
	require.NoError(t, err)
	sub := b.createSubscription(t, map[string]any{"url": newReceiver(t, http.StatusNoContent).server.URL, "organization_id": "org-a"})
	other := b.createSubscription(t, map[string]any{"url": newReceiver(t, http.StatusNoContent).server.URL, "organization_id": "org-b"})
	require.Equal(t, http.StatusCreated, b.admin(t, "POST", "/v1/events", map[string]any{"type": "agent.step.completed", "organization_id": "org-a"}).status)
	b.waitFinal(t, 1)

	stats := call(t, b.server, tokenA.Secret, "GET", "/v1/subscriptions/"+sub.str("id")+"/stats", nil)
	require.Equal(t, http.StatusOK, stats.status, stats.raw)
	require.EqualValues(t, 1, stats.body["delivered"])
	require.EqualValues(t, 1, stats.body["success_rate"])
	hourly, _ := stats.body["hourly"].([]any)
	require.Len(t, hourly, 24)
	last, _ := hourly[23].(map[string]any)
	require.EqualValues(t, 1, last["delivered"])
	requireProblem(t, call(t, b.server, tokenA.Secret, "GET", "/v1/subscriptions/"+other.str("id")+"/stats", nil), http.StatusNotFound)

	types := call(t, b.server, tokenA.Secret, "GET", "/v1/event-types", nil)
	require.Equal(t, http.StatusOK, types.status, types.raw)
	entries := types.list()
	require.Len(t, entries, len(outbox.EventCatalog))
	require.Equal(t, "agent.step.completed", entries[0]["type"])
	require.NotNil(t, entries[0]["last_seen"])
	require.Nil(t, entries[1]["last_seen"])

	requireProblem(t, call(t, b.server, tokenA.Secret, "GET", "/v1/system", nil), http.StatusForbidden)
	system := b.admin(t, "GET", "/v1/system", nil)
	require.Equal(t, http.StatusOK, system.status, system.raw)
	require.Contains(t, system.body, "relay_backlog")
	daemons, _ := system.body["daemons"].([]any)
	require.NotEmpty(t, daemons)
}
