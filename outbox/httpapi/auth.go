package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"github.com/outboxd/outboxd/outbox"
)

// principal is who a request acts as: an admin, or one organization (through
// its API token or a portal session), perhaps narrowed to one agent (a portal
// session opened for an agent).
type principal struct {
	admin          bool
	organizationID string
	agentID        string
}

// seesSubscription reports whether the principal may see a subscription: one of
// its organization's and, for a principal narrowed to an agent, that agent's.
func (p principal) seesSubscription(sub *outbox.Subscription) bool {
	return p.sees(sub.OrganizationID) && (p.admin || p.agentID == "" || sub.AgentID == p.agentID)
}

// sees reports whether the principal may see something of organizationID.
func (p principal) sees(organizationID string) bool {
	return p.admin || (organizationID != "" && organizationID == p.organizationID)
}

type principalKey struct{}

func principalFrom(ctx context.Context) principal {
	p, _ := ctx.Value(principalKey{}).(principal)
	return p
}

// credentials reads the token from "Authorization: Bearer <token>" or from the
// password of basic auth (so a browser can open the River UI).
func credentials(r *http.Request) string {
	header := r.Header.Get("Authorization")
	if scheme, token, ok := strings.Cut(header, " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(token)
	}
	if _, password, ok := r.BasicAuth(); ok {
		return password
	}
	return ""
}

// authenticator checks tokens: admin tokens from the configuration, compared in
// constant time, then organization tokens through the store.
type authenticator struct {
	adminDigests [][sha256.Size]byte
	lookup       func(ctx context.Context, token string) (organizationID string, err error)
}

func newAuthenticator(adminTokens []string, lookup func(ctx context.Context, token string) (string, error)) *authenticator {
	a := &authenticator{lookup: lookup}
	for _, token := range adminTokens {
		if token != "" {
			a.adminDigests = append(a.adminDigests, sha256.Sum256([]byte(token)))
		}
	}
	return a
}

var errUnauthorized = errors.New("unauthorized")

// isAdminDigest reports, in constant time, whether digest is the SHA-256 of a
// configured admin token.
func (a *authenticator) isAdminDigest(digest []byte) bool {
	found := 0
	for _, want := range a.adminDigests {
		found |= subtle.ConstantTimeCompare(digest, want[:])
	}
	return found == 1
}

func (a *authenticator) authenticate(ctx context.Context, token string) (principal, error) {
	if token == "" {
		return principal{}, errUnauthorized
	}
	if digest := sha256.Sum256([]byte(token)); a.isAdminDigest(digest[:]) {
		return principal{admin: true}, nil
	}
	if a.lookup == nil {
		return principal{}, errUnauthorized
	}
	org, err := a.lookup(ctx, token)
	switch {
	case errors.Is(err, outbox.ErrNotFound):
		return principal{}, errUnauthorized
	case err != nil:
		return principal{}, err
	}
	return principal{organizationID: org}, nil
}

// require wraps next so that it runs only for a valid token; adminOnly further
// refuses organization tokens.
func (a *authenticator) require(next http.Handler, adminOnly bool, onError func(http.ResponseWriter, *http.Request, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := a.authenticate(r.Context(), credentials(r))
		switch {
		case errors.Is(err, errUnauthorized):
			unauthorized(w)
			return
		case err != nil:
			onError(w, r, err)
			return
		case adminOnly && !p.admin:
			writeProblem(w, http.StatusForbidden, "this needs an admin token")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// unauthorized answers 401 with one WWW-Authenticate line per scheme. Chromium
// reads only the first challenge of a line, so "Bearer …, Basic …" on one line
// never showed its sign-in prompt; on their own lines it skips Bearer, which it
// does not know, and asks for Basic.
func unauthorized(w http.ResponseWriter) {
	addChallenges(w)
	writeProblem(w, http.StatusUnauthorized, "a valid token is required: Authorization: Bearer <token>")
}

// addChallenges sets the WWW-Authenticate lines of a 401.
func addChallenges(w http.ResponseWriter) {
	w.Header().Add("WWW-Authenticate", `Bearer realm="outboxd"`)
	w.Header().Add("WWW-Authenticate", `Basic realm="outboxd", charset="UTF-8"`)
}
