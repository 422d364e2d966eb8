// Package httpapi owns outboxd's HTTP surface: the REST API under /v1 (with its
// OpenAPI document at /openapi.json), bearer-token auth, the River UI mount and
// its browser sign-in (/login, session cookies), liveness (/healthz), readiness
// (/readyz), Prometheus metrics (/metrics), and the server's limits. It
// does not import the jobs package: what it needs from the daemon comes in as the
// Operations interface and functions, which cmd/outboxd wires up.
package httpapi

import (
	"cmp"
	"context"
	_ "embed" // the OpenAPI document
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/outboxd/outboxd/outbox"
)

//go:embed openapi.json
var openAPIDocument []byte

// Config configures the handler. A nil *Config serves only /healthz.
type Config struct {
	// Logger receives request errors. Defaults to discarding them.
	Logger *slog.Logger

	// Ready reports whether the daemon can do its work; /readyz answers 503 with
	// the error while it returns one. Nil means always ready.
	Ready func(ctx context.Context) error

	// Degraded lists what works less well than it should without making the
	// daemon unready (Redis wake-ups down); /readyz shows it. Nil means nothing.
	Degraded func(ctx context.Context) []string

	// Metrics serves /metrics. Nil leaves /metrics unserved.
	Metrics http.Handler

	// Store serves the /v1 API. Nil leaves the API unserved.
	Store *outbox.Store

	// Operations carries out retries, tests and recoveries. Required with Store.
	Operations Operations

	// AdminTokens may do anything, including opening the River UI. Compared in
	// constant time; never logged.
	AdminTokens []string

	// TokenOrganization resolves an organization token to its organization, or
	// returns outbox.ErrNotFound for an unknown or revoked one. Nil accepts only
	// admin tokens.
	TokenOrganization func(ctx context.Context, token string) (organizationID string, err error)

	// RiverUI, if set, is served at /riverui/ to admins: an admin token (bearer,
	// or basic auth with the token as the password), or, with Store set, a
	// browser session started at /login.
	RiverUI http.Handler

	// PublicURL is where browsers reach this server (scheme, host and any path
	// prefix), for the portal links the API makes. Empty takes each request's
	// own scheme and Host.
	PublicURL string

	// LettaStatus, if set, reports the Letta triggers' install and recent
	// errors for the operators' console.
	LettaStatus func(ctx context.Context) (*LettaStatus, error)

	// SessionLifetime is how long a browser session started at /login lasts.
	// Defaults to SessionLifetimeDefault (12h).
	SessionLifetime time.Duration
}

// NewHandler returns the HTTP handler for outboxd run.
func NewHandler(config *Config) http.Handler {
	if config == nil {
		config = &Config{}
	}
	logger := config.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, logger, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if config.Ready != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
			defer cancel()
			if err := config.Ready(ctx); err != nil {
				writeJSON(w, logger, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": err.Error()})
				return
			}
		}
		body := map[string]any{"status": "ready"}
		if config.Degraded != nil {
			if degraded := config.Degraded(r.Context()); len(degraded) > 0 {
				body["status"], body["degraded"] = "degraded", degraded
			}
		}
		writeJSON(w, logger, http.StatusOK, body)
	})
	if config.Metrics != nil {
		mux.Handle("GET /metrics", config.Metrics)
	}
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openAPIDocument)
	})

	auth := newAuthenticator(config.AdminTokens, config.TokenOrganization)
	onError := func(w http.ResponseWriter, r *http.Request, err error) { writeError(w, r, logger, err) }
	if config.Store != nil {
		a := &api{store: config.Store, ops: config.Operations, logger: logger, public: config.PublicURL, letta: config.LettaStatus}
		for _, rt := range routes {
			handle := rt.handle
			mux.Handle(rt.method+" "+rt.path, auth.require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				handle(a, w, r)
			}), false, onError))
		}
		mux.Handle("/v1/", auth.require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if allowed := allowedMethods(mux, r); len(allowed) > 0 {
				allow := strings.Join(allowed, ", ")
				w.Header().Set("Allow", allow)
				writeProblem(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s is not allowed on %s; use %s", r.Method, r.URL.Path, allow))
				return
			}
			writeProblem(w, http.StatusNotFound, "no such endpoint; see /openapi.json")
		}), false, onError))
	}
	var signIn *sessions
	if config.Store != nil {
		signIn = &sessions{store: config.Store, auth: auth, lifetime: cmp.Or(config.SessionLifetime, SessionLifetimeDefault), logger: logger}
		signIn.mount(mux)
		a := &api{store: config.Store, ops: config.Operations, logger: logger, public: config.PublicURL, letta: config.LettaStatus}
		newWebApp(a, signIn, logger, config.RiverUI != nil, config.LettaStatus).mount(mux)
	}
	if config.RiverUI != nil {
		riverUI := auth.require(config.RiverUI, true, onError)
		if signIn != nil {
			riverUI = signIn.require(config.RiverUI, onError)
		}
		mux.Handle("/riverui/", riverUI)
		mux.Handle("GET /riverui", http.RedirectHandler("/riverui/", http.StatusMovedPermanently))
	}
	return crossOriginProtection().Handler(mux)
}

// allowedMethods lists the methods the API serves on r's path, for a request
// that reached the catch-all /v1/ pattern: none means the path is unknown.
func allowedMethods(mux *http.ServeMux, r *http.Request) []string {
	var allowed []string
	for _, method := range []string{"DELETE", "GET", "HEAD", "PATCH", "POST", "PUT"} {
		probe := r.Clone(r.Context())
		probe.Method = method
		if _, pattern := mux.Handler(probe); pattern != "" && pattern != "/v1/" {
			allowed = append(allowed, method)
		}
	}
	return allowed
}

// crossOriginProtection refuses state-changing requests (anything but GET, HEAD
// and OPTIONS) that a browser sends on behalf of another site: Sec-Fetch-Site
// cross-site or same-site, or, from browsers too old to send it, an Origin whose
// host is not the request's Host. A browser that has cached basic-auth
// credentials would otherwise attach them to a form or fetch from any page.
// Requests without either header (curl, SDKs, other servers) are not a browser
// acting for someone else and pass. Same-site is refused too: a sibling
// subdomain (another team's app) is not trusted with outboxd's admin powers.
func crossOriginProtection() *http.CrossOriginProtection {
	protection := http.NewCrossOriginProtection()
	protection.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeProblem(w, http.StatusForbidden, "cross-origin request refused: a page on another site may not change anything here (Origin or Sec-Fetch-Site says the request comes from elsewhere)")
	}))
	return protection
}
