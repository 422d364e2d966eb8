package outbox_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/outboxtest"
)

func TestWebSessions(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		ctx   context.Context
		store *outbox.Store
		admin []byte // the digest of an admin token
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		digest := sha256.Sum256([]byte("admin-token-0123456789"))
		return &testBundle{ctx: context.Background(), store: outboxtest.Store(t), admin: digest[:]}
	}
	exec := func(t *testing.T, b *testBundle, sql string, args ...any) {
		t.Helper()
		_, err := outboxtest.Pool(t).Exec(b.ctx, fmt.Sprintf(sql, b.store.Schema()), args...)
		require.NoError(t, err)
	}

	t.Run("AdminSessionLifecycle", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		created, err := b.store.WebSessionCreate(b.ctx, &outbox.WebSessionCreateParams{AdminTokenDigest: b.admin, UserAgent: "Chromium", Lifetime: 12 * time.Hour})
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(created.ID, "ses_"))
		require.True(t, strings.HasPrefix(created.Token, outbox.WebSessionTokenPrefix))
		require.Len(t, created.Token, len(outbox.WebSessionTokenPrefix)+43, "32 random bytes")
		require.True(t, created.Admin())
		require.WithinDuration(t, created.CreatedAt.Add(12*time.Hour), created.ExpiresAt, time.Second)

		got, err := b.store.WebSessionAuthenticate(b.ctx, created.Token)
		require.NoError(t, err)
		require.Equal(t, created.ID, got.ID)
		require.Equal(t, b.admin, got.AdminTokenDigest)
		require.Equal(t, "Chromium", got.UserAgent)

		// Only the token's digest is stored.
		var row string
		require.NoError(t, outboxtest.Pool(t).QueryRow(b.ctx, fmt.Sprintf("SELECT row_to_json(s)::text FROM %s.web_sessions AS s", b.store.Schema())).Scan(&row))
		require.NotContains(t, row, strings.TrimPrefix(created.Token, outbox.WebSessionTokenPrefix))
		digest := sha256.Sum256([]byte(created.Token))
		require.Contains(t, row, fmt.Sprintf(`"token_digest":"\\x%x"`, digest))

		_, err = b.store.WebSessionAuthenticate(b.ctx, created.Token+"x")
		require.ErrorIs(t, err, outbox.ErrNotFound)
		_, err = b.store.WebSessionAuthenticate(b.ctx, "obx_"+created.Token)
		require.ErrorIs(t, err, outbox.ErrNotFound)

		require.NoError(t, b.store.WebSessionRevoke(b.ctx, created.Token))
		_, err = b.store.WebSessionAuthenticate(b.ctx, created.Token)
		require.ErrorIs(t, err, outbox.ErrNotFound, "signed out")
		require.NoError(t, b.store.WebSessionRevoke(b.ctx, created.Token), "signing out twice is fine")
	})

	t.Run("Expires", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		created, err := b.store.WebSessionCreate(b.ctx, &outbox.WebSessionCreateParams{AdminTokenDigest: b.admin, Lifetime: time.Hour})
		require.NoError(t, err)
		exec(t, b, "UPDATE %s.web_sessions SET created_at = now() - interval '2 hours', expires_at = now() - interval '1 second' WHERE id = $1", created.ID)
		_, err = b.store.WebSessionAuthenticate(b.ctx, created.Token)
		require.ErrorIs(t, err, outbox.ErrNotFound)
	})

	t.Run("LastSeenAtOncePerMinute", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		created, err := b.store.WebSessionCreate(b.ctx, &outbox.WebSessionCreateParams{AdminTokenDigest: b.admin, Lifetime: time.Hour})
		require.NoError(t, err)
		lastSeen := func() time.Time {
			var at time.Time
			require.NoError(t, outboxtest.Pool(t).QueryRow(b.ctx, fmt.Sprintf("SELECT last_seen_at FROM %s.web_sessions", b.store.Schema())).Scan(&at))
			return at
		}
		first := lastSeen()
		_, err = b.store.WebSessionAuthenticate(b.ctx, created.Token)
		require.NoError(t, err)
		require.Equal(t, first, lastSeen(), "not written within the minute")
		exec(t, b, "UPDATE %s.web_sessions SET last_seen_at = now() - interval '2 minutes'")
		_, err = b.store.WebSessionAuthenticate(b.ctx, created.Token)
		require.NoError(t, err)
		require.WithinDuration(t, time.Now(), lastSeen(), time.Minute)
	})

	t.Run("OrganizationSessionEndsWithItsToken", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		token, err := b.store.TokenCreate(b.ctx, &outbox.TokenCreateParams{OrganizationID: "org-a"})
		require.NoError(t, err)
		created, err := b.store.WebSessionCreate(b.ctx, &outbox.WebSessionCreateParams{OrganizationID: "org-a", AgentID: "agent-1", APITokenID: token.ID, Lifetime: time.Hour})
		require.NoError(t, err)
		require.False(t, created.Admin())
		got, err := b.store.WebSessionAuthenticate(b.ctx, created.Token)
		require.NoError(t, err)
		require.Equal(t, "org-a", got.OrganizationID)
		require.Equal(t, "agent-1", got.AgentID)
		require.Equal(t, token.ID, got.APITokenID)

		require.NoError(t, b.store.TokenRevoke(b.ctx, token.ID))
		_, err = b.store.WebSessionAuthenticate(b.ctx, created.Token)
		require.ErrorIs(t, err, outbox.ErrNotFound)
	})

	t.Run("SignInSweepsLongEndedSessions", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		for range 3 {
			_, err := b.store.WebSessionCreate(b.ctx, &outbox.WebSessionCreateParams{AdminTokenDigest: b.admin, Lifetime: time.Hour})
			require.NoError(t, err)
		}
		exec(t, b, "UPDATE %s.web_sessions SET created_at = now() - interval '3 days', expires_at = now() - interval '2 days' WHERE id = (SELECT min(id) FROM %[1]s.web_sessions)")
		exec(t, b, "UPDATE %s.web_sessions SET revoked_at = now() - interval '25 hours' WHERE id = (SELECT max(id) FROM %[1]s.web_sessions)")
		_, err := b.store.WebSessionCreate(b.ctx, &outbox.WebSessionCreateParams{AdminTokenDigest: b.admin, Lifetime: time.Hour})
		require.NoError(t, err)
		require.Equal(t, 2, countRows(b.ctx, t, b.store, "web_sessions"))
	})

	t.Run("BadInput", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		for _, tt := range []struct {
			params         outbox.WebSessionCreateParams
			field, message string
		}{
			{outbox.WebSessionCreateParams{AdminTokenDigest: b.admin}, "lifetime", "a positive duration"},
			{outbox.WebSessionCreateParams{AdminTokenDigest: b.admin, Lifetime: 31 * 24 * time.Hour}, "lifetime", "at most 720h"},
			{outbox.WebSessionCreateParams{Lifetime: time.Hour}, "admin_token_digest", "an admin session needs"},
			{outbox.WebSessionCreateParams{OrganizationID: "o", AdminTokenDigest: b.admin, Lifetime: time.Hour}, "admin_token_digest", "only for an admin session"},
			{outbox.WebSessionCreateParams{AgentID: "a", AdminTokenDigest: b.admin, Lifetime: time.Hour}, "agent_id", "only for an organization's session"},
			{outbox.WebSessionCreateParams{OrganizationID: strings.Repeat("o", 256), Lifetime: time.Hour}, "organization_id", "1 to 255 characters"},
		} {
			_, err := b.store.WebSessionCreate(b.ctx, &tt.params)
			requireValidationError(t, err, tt.field, tt.message)
		}
		require.Zero(t, countRows(b.ctx, t, b.store, "web_sessions"))

		long, err := b.store.WebSessionCreate(b.ctx, &outbox.WebSessionCreateParams{AdminTokenDigest: b.admin, UserAgent: strings.Repeat("u", 600) + "\x00\xff", Lifetime: time.Hour})
		require.NoError(t, err, "a long or odd User-Agent is cut, not refused")
		require.Len(t, long.UserAgent, 512)
	})
}
