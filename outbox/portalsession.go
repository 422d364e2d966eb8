package outbox

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/outboxd/outboxd/outbox/internal/dbsqlc"
)

// This file holds portal sessions: a one-time link that opens the tenant portal
// for one organization (and, optionally, one agent). Opening the link exchanges
// its token, once, for a browser session (WebSession) that sees exactly what the
// organization's API token sees, and ends when the portal session does. Only the
// SHA-256 of the link's token is stored.

// PortalLinkTokenPrefix starts every portal link's token.
const PortalLinkTokenPrefix = "obxl_"

// Bounds of PortalSessionCreateParams.ExpiresIn.
const (
	PortalSessionExpiresInDefault = 12 * time.Hour
	PortalSessionExpiresInMax     = WebSessionLifetimeMax
)

// PortalSessionState is where a portal session stands.
type PortalSessionState string

const (
	PortalSessionUnopened PortalSessionState = "unopened" // the link has not been opened yet
	PortalSessionOpen     PortalSessionState = "open"     // the link was opened; its browser session is live
	PortalSessionExpired  PortalSessionState = "expired"
	PortalSessionRevoked  PortalSessionState = "revoked"
)

// PortalSession is a portal link and the browser session it started.
type PortalSession struct {
	ID             string `json:"id"`
	OrganizationID string `json:"organization_id"`
	// AgentID narrows the portal to one agent's webhooks; empty shows the
	// whole organization.
	AgentID string `json:"agent_id,omitempty"`
	// CreatedBy says who asked for it: "admin", "cli" or an organization token.
	CreatedBy string             `json:"created_by,omitempty"`
	State     PortalSessionState `json:"state"`
	CreatedAt time.Time          `json:"created_at"`
	// ExpiresAt ends the link (unopened) and the session it started alike.
	ExpiresAt time.Time  `json:"expires_at"`
	OpenedAt  *time.Time `json:"opened_at,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`

	webSessionID string
}

func portalSessionFromRow(row *dbsqlc.OutboxPortalSession, now time.Time) *PortalSession {
	p := &PortalSession{
		ID: row.ID, OrganizationID: row.OrganizationID, AgentID: deref(row.AgentID), CreatedBy: row.CreatedBy,
		CreatedAt: row.CreatedAt, ExpiresAt: row.ExpiresAt, OpenedAt: row.OpenedAt, RevokedAt: row.RevokedAt,
		webSessionID: deref(row.WebSessionID),
	}
	switch {
	case row.RevokedAt != nil:
		p.State = PortalSessionRevoked
	case !row.ExpiresAt.After(now):
		p.State = PortalSessionExpired
	case row.OpenedAt != nil:
		p.State = PortalSessionOpen
	default:
		p.State = PortalSessionUnopened
	}
	return p
}

// PortalSessionCreateParams describe a new portal session.
type PortalSessionCreateParams struct {
	// OrganizationID is the organization the portal shows. Required.
	OrganizationID string
	// AgentID narrows the portal to that agent's webhooks. Optional.
	AgentID string
	// CreatedBy says who asked for it (kept for operators). Optional.
	CreatedBy string
	// ExpiresIn is how long the link may wait to be opened and how long the
	// session then lasts, both counted from now. Defaults to
	// PortalSessionExpiresInDefault (12h); at most PortalSessionExpiresInMax.
	ExpiresIn time.Duration
}

// PortalSessionCreateResult is a new portal session and its link's token,
// which is never stored or shown again.
type PortalSessionCreateResult struct {
	*PortalSession
	Token string `json:"-"`
}

// PortalSessionCreate makes a portal session and its one-time link token. It
// also deletes portal sessions that ended more than a day ago.
func (s *Store) PortalSessionCreate(ctx context.Context, params *PortalSessionCreateParams) (*PortalSessionCreateResult, error) {
	expiresIn := cmp.Or(params.ExpiresIn, PortalSessionExpiresInDefault)
	switch {
	case strings.TrimSpace(params.OrganizationID) == "":
		return nil, invalid("organization_id", "required: a portal shows one organization")
	case expiresIn < time.Minute || expiresIn > PortalSessionExpiresInMax:
		return nil, invalid("expires_in", "from 1m to 720h (30 days)")
	}
	if err := checkID("organization_id", params.OrganizationID, "portal_sessions_organization_id_length"); err != nil {
		return nil, err
	}
	if err := checkID("agent_id", params.AgentID, "portal_sessions_agent_id_length"); err != nil {
		return nil, err
	}
	if err := checkText("created_by", params.CreatedBy, 255, "portal_sessions_created_by_length"); err != nil {
		return nil, err
	}
	token, err := randomToken(PortalLinkTokenPrefix)
	if err != nil {
		return nil, err
	}
	exec := s.on(s.db)
	if _, err := s.queries.PortalSessionSweep(ctx, exec); err != nil {
		return nil, translateError("sweep portal sessions", err)
	}
	row, err := s.queries.PortalSessionInsert(ctx, exec, &dbsqlc.PortalSessionInsertParams{
		OrganizationID:   params.OrganizationID,
		AgentID:          nullable(params.AgentID),
		LinkDigest:       webSessionDigest(token),
		CreatedBy:        params.CreatedBy,
		ExpiresInSeconds: expiresIn.Seconds(),
	})
	if err != nil {
		return nil, translateError("create portal session", err)
	}
	return &PortalSessionCreateResult{PortalSession: portalSessionFromRow(row, row.CreatedAt), Token: token}, nil
}

// randomToken is prefix and 32 random bytes in URL-safe base64.
func randomToken(prefix string) (string, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	return prefix + base64.RawURLEncoding.EncodeToString(raw), nil
}

// PortalSessionOpenResult is an opened portal session and the token of the
// browser session it started (the cookie's value), never stored or shown again.
type PortalSessionOpenResult struct {
	*PortalSession
	SessionToken string
}

// PortalSessionOpen exchanges a link's token for a browser session, once: a
// link already opened, revoked, expired or unknown is ErrNotFound.
func (s *Store) PortalSessionOpen(ctx context.Context, linkToken, userAgent string) (*PortalSessionOpenResult, error) {
	if !strings.HasPrefix(linkToken, PortalLinkTokenPrefix) {
		return nil, ErrNotFound
	}
	userAgent = strings.ToValidUTF8(strings.ReplaceAll(userAgent, "\x00", ""), "")
	if utf8.RuneCountInString(userAgent) > 512 {
		userAgent = string([]rune(userAgent)[:512])
	}
	sessionToken, err := randomToken(WebSessionTokenPrefix)
	if err != nil {
		return nil, err
	}
	row, err := s.queries.PortalSessionOpen(ctx, s.on(s.db), &dbsqlc.PortalSessionOpenParams{
		LinkDigest: webSessionDigest(linkToken), TokenDigest: webSessionDigest(sessionToken), UserAgent: userAgent,
	})
	if err != nil {
		return nil, translateError("open portal link", err)
	}
	session := (*dbsqlc.OutboxPortalSession)(row)
	return &PortalSessionOpenResult{PortalSession: portalSessionFromRow(session, *row.OpenedAt), SessionToken: sessionToken}, nil
}

// PortalSessionGet returns one portal session, or ErrNotFound.
func (s *Store) PortalSessionGet(ctx context.Context, id string) (*PortalSession, error) {
	row, err := s.queries.PortalSessionGet(ctx, s.on(s.db), id)
	if err != nil {
		return nil, translateError("get portal session", err)
	}
	return portalSessionFromRow(row, time.Now()), nil
}

// PortalSessionOf returns the portal session that started a browser session,
// or ErrNotFound (a River UI sign-in, for one).
func (s *Store) PortalSessionOf(ctx context.Context, webSessionID string) (*PortalSession, error) {
	row, err := s.queries.PortalSessionByWebSession(ctx, s.on(s.db), &webSessionID)
	if err != nil {
		return nil, translateError("get portal session", err)
	}
	return portalSessionFromRow(row, time.Now()), nil
}

// PortalSessionListParams filter PortalSessionList.
type PortalSessionListParams struct {
	// OrganizationID keeps that organization's sessions. Empty lists all.
	OrganizationID string
	// IncludeEnded lists expired and revoked sessions too.
	IncludeEnded bool
	// Before continues a listing below this id (lists are newest first).
	Before string
	// Limit caps the result. Defaults to 100; at most 1,000.
	Limit int
}

// PortalSessionList lists portal sessions, newest first.
func (s *Store) PortalSessionList(ctx context.Context, params *PortalSessionListParams) ([]*PortalSession, error) {
	rows, err := s.queries.PortalSessionList(ctx, s.on(s.db), &dbsqlc.PortalSessionListParams{
		OrganizationID: nullable(params.OrganizationID),
		IncludeEnded:   params.IncludeEnded,
		Before:         params.Before,
		Max:            int32(listLimit(params.Limit)), //nolint:gosec // bounded by listLimit
	})
	if err != nil {
		return nil, translateError("list portal sessions", err)
	}
	now := time.Now()
	out := make([]*PortalSession, len(rows))
	for i, row := range rows {
		out[i] = portalSessionFromRow(row, now)
	}
	return out, nil
}

// PortalSessionRevoke ends a portal session: its link no longer opens and the
// browser it opened in is signed out. Revoking an ended one changes nothing;
// an unknown one is ErrNotFound.
func (s *Store) PortalSessionRevoke(ctx context.Context, id string) (*PortalSession, error) {
	row, err := s.queries.PortalSessionRevoke(ctx, s.on(s.db), id)
	if err != nil {
		return nil, translateError("revoke portal session", err)
	}
	return portalSessionFromRow((*dbsqlc.OutboxPortalSession)(row), time.Now()), nil
}
