package httpapi

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/outboxd/outboxd/outbox"
)

// This file holds the API of portal sessions: POST /v1/portal/sessions makes a
// one-time link that opens the tenant portal for one organization (see
// portal.go), and the others list and revoke them. An organization's token
// manages its own organization's sessions; an admin's, any.

// PortalOpenPath is where a portal link points: GET it with ?token=.
const PortalOpenPath = "/portal/open"

// PortalLink is the URL that opens a portal session, from the daemon's public
// URL (scheme, host and any path prefix) and the link's token.
func PortalLink(publicURL, token string) string {
	return strings.TrimRight(publicURL, "/") + PortalOpenPath + "?token=" + url.QueryEscape(token)
}

// portalSessionCreated is POST /v1/portal/sessions's answer: the session and,
// once, the link that opens it.
type portalSessionCreated struct {
	*outbox.PortalSession
	URL string `json:"url"`
}

type portalSessionCreateRequest struct {
	OrganizationID string `json:"organization_id"`
	AgentID        string `json:"agent_id"`
	// ExpiresIn is a Go duration ("12h"): how long the link may wait to be
	// opened, and how long the session lasts, from now.
	ExpiresIn string `json:"expires_in"`
}

// publicURL is where browsers reach this server: the configured URL, else the
// request's own scheme and host.
func (a *api) publicURL(r *http.Request) string {
	if a.public != "" {
		return a.public
	}
	scheme := "http"
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (a *api) portalSessionCreate(w http.ResponseWriter, r *http.Request) {
	var req portalSessionCreateRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	p := principalFrom(r.Context())
	org, err := organizationFor(p, req.OrganizationID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var expiresIn time.Duration
	if req.ExpiresIn != "" {
		if expiresIn, err = time.ParseDuration(req.ExpiresIn); err != nil {
			a.fail(w, r, &outbox.ValidationError{Field: "expires_in", Message: "a duration like 30m or 12h"})
			return
		}
	}
	createdBy := "admin token"
	if !p.admin {
		createdBy = "organization token"
	}
	created, err := a.store.PortalSessionCreate(r.Context(), &outbox.PortalSessionCreateParams{
		OrganizationID: org, AgentID: req.AgentID, CreatedBy: createdBy, ExpiresIn: expiresIn,
	})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/portal/sessions/"+created.ID)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, a.logger, http.StatusCreated, &portalSessionCreated{PortalSession: created.PortalSession, URL: PortalLink(a.publicURL(r), created.Token)})
}

func (a *api) portalSessionList(w http.ResponseWriter, r *http.Request) {
	limit, cursor, ok := listQuery(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	params := &outbox.PortalSessionListParams{OrganizationID: q.Get("organization_id"), Before: cursor, Limit: limit + 1}
	if raw := q.Get("include_ended"); raw != "" {
		include, err := strconv.ParseBool(raw)
		if err != nil {
			writeProblem(w, http.StatusUnprocessableEntity, "include_ended must be true or false", FieldProblem{Field: "include_ended", Message: "true or false"})
			return
		}
		params.IncludeEnded = include
	}
	if p := principalFrom(r.Context()); !p.admin {
		if params.OrganizationID != "" && params.OrganizationID != p.organizationID {
			writeJSON(w, a.logger, http.StatusOK, page[*outbox.PortalSession]{Data: []*outbox.PortalSession{}})
			return
		}
		params.OrganizationID = p.organizationID
	}
	sessions, err := a.store.PortalSessionList(r.Context(), params)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, a.logger, http.StatusOK, pageOf(sessions, limit, func(s *outbox.PortalSession) string { return s.ID }))
}

// portalSession loads the path's portal session if the principal may see it.
func (a *api) portalSession(w http.ResponseWriter, r *http.Request) (*outbox.PortalSession, bool) {
	session, err := a.store.PortalSessionGet(r.Context(), r.PathValue("id"))
	if err == nil && !principalFrom(r.Context()).sees(session.OrganizationID) {
		err = outbox.ErrNotFound
	}
	if err != nil {
		a.fail(w, r, err)
		return nil, false
	}
	return session, true
}

func (a *api) portalSessionGet(w http.ResponseWriter, r *http.Request) {
	if session, ok := a.portalSession(w, r); ok {
		writeJSON(w, a.logger, http.StatusOK, session)
	}
}

func (a *api) portalSessionRevoke(w http.ResponseWriter, r *http.Request) {
	session, ok := a.portalSession(w, r)
	if !ok {
		return
	}
	revoked, err := a.store.PortalSessionRevoke(r.Context(), session.ID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, a.logger, http.StatusOK, revoked)
}
