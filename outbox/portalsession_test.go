package outbox_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/outboxtest"
)

func TestPortalSessions(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		ctx   context.Context
		store *outbox.Store
	}
	// One schema for every case (each migrated schema costs seconds); each
	// case works in organizations of its own.
	shared := &testBundle{ctx: context.Background(), store: outboxtest.Store(t)}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		return shared
	}
	create := func(t *testing.T, b *testBundle, params *outbox.PortalSessionCreateParams) *outbox.PortalSessionCreateResult {
		t.Helper()
		created, err := b.store.PortalSessionCreate(b.ctx, params)
		require.NoError(t, err)
		return created
	}

	t.Run("LinkOpensOnceIntoAnOrganizationSession", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		created := create(t, b, &outbox.PortalSessionCreateParams{OrganizationID: "org-1", AgentID: "agent-1", CreatedBy: "admin", ExpiresIn: 2 * time.Hour})
		require.True(t, strings.HasPrefix(created.ID, "psn_"))
		require.True(t, strings.HasPrefix(created.Token, outbox.PortalLinkTokenPrefix))
		require.Equal(t, outbox.PortalSessionUnopened, created.State)
		require.WithinDuration(t, created.CreatedAt.Add(2*time.Hour), created.ExpiresAt, time.Second)

		// Only the link's digest is stored.
		var row string
		require.NoError(t, outboxtest.Pool(t).QueryRow(b.ctx, fmt.Sprintf("SELECT row_to_json(p)::text FROM %s.portal_sessions AS p WHERE id = $1", b.store.Schema()), created.ID).Scan(&row))
		require.NotContains(t, row, strings.TrimPrefix(created.Token, outbox.PortalLinkTokenPrefix))
		digest := sha256.Sum256([]byte(created.Token))
		require.Contains(t, row, fmt.Sprintf(`"link_digest":"\\x%x"`, digest))

		opened, err := b.store.PortalSessionOpen(b.ctx, created.Token, "Chromium")
		require.NoError(t, err)
		require.Equal(t, outbox.PortalSessionOpen, opened.State)
		require.True(t, strings.HasPrefix(opened.SessionToken, outbox.WebSessionTokenPrefix))

		web, err := b.store.WebSessionAuthenticate(b.ctx, opened.SessionToken)
		require.NoError(t, err)
		require.Equal(t, "org-1", web.OrganizationID)
		require.Equal(t, "agent-1", web.AgentID)
		require.False(t, web.Admin())
		require.Equal(t, created.ExpiresAt, web.ExpiresAt, "the browser session ends with the portal session")
		of, err := b.store.PortalSessionOf(b.ctx, web.ID)
		require.NoError(t, err)
		require.Equal(t, created.ID, of.ID)

		_, err = b.store.PortalSessionOpen(b.ctx, created.Token, "Chromium")
		require.ErrorIs(t, err, outbox.ErrNotFound, "a link opens once")
		_, err = b.store.PortalSessionOpen(b.ctx, created.Token+"x", "")
		require.ErrorIs(t, err, outbox.ErrNotFound)
		_, err = b.store.PortalSessionOpen(b.ctx, opened.SessionToken, "")
		require.ErrorIs(t, err, outbox.ErrNotFound, "a session token is not a link")

		// Revoking signs the browser out.
		revoked, err := b.store.PortalSessionRevoke(b.ctx, created.ID)
		require.NoError(t, err)
		require.Equal(t, outbox.PortalSessionRevoked, revoked.State)
		_, err = b.store.WebSessionAuthenticate(b.ctx, opened.SessionToken)
		require.ErrorIs(t, err, outbox.ErrNotFound)
		again, err := b.store.PortalSessionRevoke(b.ctx, created.ID)
		require.NoError(t, err, "revoking twice changes nothing")
		require.Equal(t, revoked.RevokedAt, again.RevokedAt)
		_, err = b.store.PortalSessionRevoke(b.ctx, "psn_unknown")
		require.ErrorIs(t, err, outbox.ErrNotFound)
	})

	t.Run("ConcurrentOpensStartOneSession", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		created := create(t, b, &outbox.PortalSessionCreateParams{OrganizationID: "org-concurrent"})
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			opened int
		)
		for range 8 {
			wg.Go(func() {
				_, err := b.store.PortalSessionOpen(b.ctx, created.Token, "")
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					opened++
				} else {
					require.ErrorIs(t, err, outbox.ErrNotFound)
				}
			})
		}
		wg.Wait()
		require.Equal(t, 1, opened)
		var sessions int
		require.NoError(t, outboxtest.Pool(t).QueryRow(b.ctx, fmt.Sprintf("SELECT count(*) FROM %s.web_sessions WHERE organization_id = 'org-concurrent'", b.store.Schema())).Scan(&sessions))
		require.Equal(t, 1, sessions)
	})

	t.Run("ExpiredOrRevokedLinksDoNotOpen", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		expired := create(t, b, &outbox.PortalSessionCreateParams{OrganizationID: "org-list-1", ExpiresIn: time.Minute})
		_, err := outboxtest.Pool(t).Exec(b.ctx, fmt.Sprintf("UPDATE %s.portal_sessions SET created_at = now() - interval '2 minutes', expires_at = now() - interval '1 second' WHERE id = $1", b.store.Schema()), expired.ID)
		require.NoError(t, err)
		_, err = b.store.PortalSessionOpen(b.ctx, expired.Token, "")
		require.ErrorIs(t, err, outbox.ErrNotFound)
		got, err := b.store.PortalSessionGet(b.ctx, expired.ID)
		require.NoError(t, err)
		require.Equal(t, outbox.PortalSessionExpired, got.State)

		revoked := create(t, b, &outbox.PortalSessionCreateParams{OrganizationID: "org-list-1"})
		_, err = b.store.PortalSessionRevoke(b.ctx, revoked.ID)
		require.NoError(t, err)
		_, err = b.store.PortalSessionOpen(b.ctx, revoked.Token, "")
		require.ErrorIs(t, err, outbox.ErrNotFound)

		live := create(t, b, &outbox.PortalSessionCreateParams{OrganizationID: "org-list-1"})
		other := create(t, b, &outbox.PortalSessionCreateParams{OrganizationID: "org-list-2"})
		listed, err := b.store.PortalSessionList(b.ctx, &outbox.PortalSessionListParams{OrganizationID: "org-list-1"})
		require.NoError(t, err)
		require.Len(t, listed, 1)
		require.Equal(t, live.ID, listed[0].ID)
		all, err := b.store.PortalSessionList(b.ctx, &outbox.PortalSessionListParams{OrganizationID: "org-list-1", IncludeEnded: true})
		require.NoError(t, err)
		require.Equal(t, []string{live.ID, revoked.ID, expired.ID}, []string{all[0].ID, all[1].ID, all[2].ID})
		others, err := b.store.PortalSessionList(b.ctx, &outbox.PortalSessionListParams{OrganizationID: "org-list-2"})
		require.NoError(t, err)
		require.Equal(t, other.ID, others[0].ID)
		page, err := b.store.PortalSessionList(b.ctx, &outbox.PortalSessionListParams{OrganizationID: "org-list-1", IncludeEnded: true, Before: live.ID, Limit: 1})
		require.NoError(t, err)
		require.Equal(t, revoked.ID, page[0].ID)
	})

	t.Run("BadInputChangesNothing", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		for _, tc := range []struct {
			params *outbox.PortalSessionCreateParams
			field  string
		}{
			{&outbox.PortalSessionCreateParams{}, "organization_id"},
			{&outbox.PortalSessionCreateParams{OrganizationID: strings.Repeat("b", 256)}, "organization_id"},
			{&outbox.PortalSessionCreateParams{OrganizationID: "bad-org", AgentID: strings.Repeat("a", 256)}, "agent_id"},
			{&outbox.PortalSessionCreateParams{OrganizationID: "bad-org", ExpiresIn: time.Second}, "expires_in"},
			{&outbox.PortalSessionCreateParams{OrganizationID: "bad-org", ExpiresIn: 31 * 24 * time.Hour}, "expires_in"},
		} {
			_, err := b.store.PortalSessionCreate(b.ctx, tc.params)
			var validation *outbox.ValidationError
			require.ErrorAs(t, err, &validation)
			require.Equal(t, tc.field, validation.Field)
		}
		var n int
		require.NoError(t, outboxtest.Pool(t).QueryRow(b.ctx, fmt.Sprintf("SELECT count(*) FROM %s.portal_sessions WHERE organization_id LIKE 'b%%'", b.store.Schema())).Scan(&n))
		require.Zero(t, n)
	})
}
