package outbox

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/outboxd/outboxd/outbox/internal/dbsqlc"
)

// This file holds browser sessions: what the River UI's sign-in form (and,
// later, the tenant portal) sets as a cookie. The cookie carries a random
// token; the database keeps only its SHA-256 digest.

// WebSessionTokenPrefix starts every session token.
const WebSessionTokenPrefix = "obxs_"

// WebSessionLifetimeMax is the longest WebSessionCreateParams.Lifetime.
const WebSessionLifetimeMax = 30 * 24 * time.Hour

// WebSession is a signed-in browser: an admin (operator) session, or an
// organization's.
type WebSession struct {
	ID string `json:"id"`

	// OrganizationID is the organization the session sees; empty for an admin.
	OrganizationID string `json:"organization_id,omitempty"`

	// AgentID narrows an organization session to one agent. Optional.
	AgentID string `json:"agent_id,omitempty"`

	// APITokenID is the organization token the session signed in with, if any;
	// revoking it ends the session.
	APITokenID string `json:"api_token_id,omitempty"`

	// AdminTokenDigest is the SHA-256 of the admin token an admin session
	// signed in with: the session is valid only while that token is configured.
	AdminTokenDigest []byte `json:"-"`

	UserAgent  string     `json:"user_agent,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	LastSeenAt time.Time  `json:"last_seen_at"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// Admin reports whether this is an admin (operator) session.
func (s *WebSession) Admin() bool { return s.OrganizationID == "" }

func webSessionFromRow(row *dbsqlc.OutboxWebSession) *WebSession {
	return &WebSession{
		ID: row.ID, OrganizationID: deref(row.OrganizationID), AgentID: deref(row.AgentID), APITokenID: deref(row.ApiTokenID),
		AdminTokenDigest: row.AdminTokenDigest, UserAgent: row.UserAgent,
		CreatedAt: row.CreatedAt, ExpiresAt: row.ExpiresAt, LastSeenAt: row.LastSeenAt, RevokedAt: row.RevokedAt,
	}
}

// WebSessionCreateParams describe a new session.
type WebSessionCreateParams struct {
	// OrganizationID makes an organization session; empty makes an admin
	// session, which needs AdminTokenDigest.
	OrganizationID string

	// AgentID narrows an organization session to one agent. Optional.
	AgentID string

	// APITokenID ties an organization session to the token it signed in with.
	// Optional.
	APITokenID string

	// AdminTokenDigest is the SHA-256 of the admin token an admin session signs
	// in with. Required for an admin session, refused for another.
	AdminTokenDigest []byte

	// UserAgent is the browser's User-Agent, kept to its first 512 characters.
	UserAgent string

	// Lifetime is how long the session lasts from now: positive, at most
	// WebSessionLifetimeMax. Required.
	Lifetime time.Duration
}

// WebSessionCreateResult is a new session and its token, the cookie's value,
// which is never stored or shown again.
type WebSessionCreateResult struct {
	*WebSession
	Token string `json:"-"`
}

func webSessionDigest(token string) []byte {
	digest := sha256.Sum256([]byte(token))
	return digest[:]
}

// WebSessionCreate starts a session. It also deletes sessions that ended more
// than a day ago, so the table holds little more than the sessions in use.
func (s *Store) WebSessionCreate(ctx context.Context, params *WebSessionCreateParams) (*WebSessionCreateResult, error) {
	switch {
	case params.Lifetime <= 0 || params.Lifetime > WebSessionLifetimeMax:
		return nil, invalid("lifetime", "a positive duration of at most %s", WebSessionLifetimeMax)
	case params.OrganizationID == "" && len(params.AdminTokenDigest) != sha256.Size:
		return nil, invalid("admin_token_digest", "an admin session needs the SHA-256 of its admin token")
	case params.OrganizationID != "" && params.AdminTokenDigest != nil:
		return nil, invalid("admin_token_digest", "only for an admin session (no organization_id)")
	case params.AgentID != "" && params.OrganizationID == "":
		return nil, violation("web_sessions_agent_in_organization")
	}
	if err := checkID("organization_id", params.OrganizationID, "web_sessions_organization_id_length"); err != nil {
		return nil, err
	}
	if err := checkID("agent_id", params.AgentID, "web_sessions_agent_id_length"); err != nil {
		return nil, err
	}
	userAgent := strings.ToValidUTF8(strings.ReplaceAll(params.UserAgent, "\x00", ""), "")
	if utf8.RuneCountInString(userAgent) > 512 {
		userAgent = string([]rune(userAgent)[:512])
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	token := WebSessionTokenPrefix + base64.RawURLEncoding.EncodeToString(raw)

	exec := s.on(s.db)
	if _, err := s.queries.WebSessionSweep(ctx, exec); err != nil {
		return nil, translateError("sweep sessions", err)
	}
	row, err := s.queries.WebSessionInsert(ctx, exec, &dbsqlc.WebSessionInsertParams{
		OrganizationID:   nullable(params.OrganizationID),
		AgentID:          nullable(params.AgentID),
		ApiTokenID:       nullable(params.APITokenID),
		AdminTokenDigest: params.AdminTokenDigest,
		TokenDigest:      webSessionDigest(token),
		UserAgent:        userAgent,
		LifetimeSeconds:  params.Lifetime.Seconds(),
	})
	if err != nil {
		return nil, translateError("create session", err)
	}
	return &WebSessionCreateResult{WebSession: webSessionFromRow(row), Token: token}, nil
}

// WebSessionAuthenticate returns the live session whose token this is, or
// ErrNotFound for an unknown, expired or signed-out one, or one whose
// organization token was revoked. The lookup is by digest through a unique
// index.
func (s *Store) WebSessionAuthenticate(ctx context.Context, token string) (*WebSession, error) {
	if !strings.HasPrefix(token, WebSessionTokenPrefix) {
		return nil, ErrNotFound
	}
	row, err := s.queries.WebSessionByDigest(ctx, s.on(s.db), webSessionDigest(token))
	if err != nil {
		return nil, translateError("authenticate session", err)
	}
	return webSessionFromRow(row), nil
}

// WebSessionRevoke ends the session whose token this is (signing out). An
// unknown or ended session is not an error: the outcome is the same.
func (s *Store) WebSessionRevoke(ctx context.Context, token string) error {
	_, err := s.queries.WebSessionRevoke(ctx, s.on(s.db), webSessionDigest(token))
	return translateError("revoke session", err)
}
