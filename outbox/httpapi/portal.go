package httpapi

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/outboxd/outboxd/outbox"
)

// This file holds the web pages: the tenant portal under /portal/ and the
// operators' console under /console/. They are server-rendered html/template
// pages from embedded files, readable without JavaScript; portal.js only adds
// copy buttons and confirmations. Every page is another view of an API
// operation: it loads through the same functions as the /v1 handlers
// (loadSubscription, loadDelivery, the scope… helpers, the store and
// Operations), with the principal of the browser's session in the context, so
// an organization's portal sees exactly what its API token sees, with the same
// 404s. The console is the same pages with an admin principal (every
// organization), plus the system's health.
//
// They live in this package rather than one beside it because they share its
// principal and authorization helpers, which stay unexported.
//
// Sessions: a portal link (POST /v1/portal/sessions) is exchanged once at
// /portal/open for the cookie PortalCookie (HttpOnly, SameSite=Strict, Secure
// over TLS); the console takes the admin session of /login. Every form carries
// a CSRF token derived from the session's cookie, on top of the cross-origin
// refusal that guards the whole server.

// PortalCookie names the cookie of a portal session.
const PortalCookie = "outboxd_portal"

//go:embed web/portal
var portalFiles embed.FS

// webCSP allows the pages their own stylesheet, script and forms, and nothing
// else: no inline script or style, no frame, no other origin.
const webCSP = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// formBodyMax bounds a page's form.
const formBodyMax = 64 << 10

// pageTimeout bounds the database work of a page that only reads: a filter
// that no index serves (a rare event type over a long log) answers that it
// took too long rather than holding a connection. Actions (a test send waits
// for the receiver) have the server's write timeout.
const pageTimeout = 10 * time.Second

// webApp serves the portal and the console.
type webApp struct {
	api      *api
	sessions *sessions
	logger   *slog.Logger
	riverUI  bool
	letta    func(ctx context.Context) (*LettaStatus, error)
	pages    map[string]*template.Template
}

// view is what every page knows about the browser it serves.
type view struct {
	// Base is "/portal" or "/console": links stay in the area they started.
	Base    string
	Console bool
	// Organization and Agent are what a portal session sees.
	Organization string
	Agent        string
	CSRF         string
	RiverUI      bool
}

type viewKey struct{}

func viewFrom(ctx context.Context) *view {
	v, _ := ctx.Value(viewKey{}).(*view)
	return v
}

func newWebApp(a *api, s *sessions, logger *slog.Logger, riverUI bool, letta func(context.Context) (*LettaStatus, error)) *webApp {
	web := &webApp{api: a, sessions: s, logger: logger, riverUI: riverUI, letta: letta, pages: map[string]*template.Template{}}
	names, err := fs.Glob(portalFiles, "web/portal/*.html")
	if err != nil {
		panic(err)
	}
	for _, name := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(name, "web/portal/"), ".html")
		if base == "layout" {
			continue
		}
		web.pages[base] = template.Must(template.New("layout.html").Funcs(templateFuncs).ParseFS(portalFiles, "web/portal/layout.html", name))
	}
	return web
}

// mount adds the portal's and the console's routes to mux.
func (web *webApp) mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /portal/open", web.open)
	mux.HandleFunc("GET /portal/static/{file}", web.static)
	mux.Handle("POST /portal/logout", web.portalAuth(web.logout))
	mux.Handle("GET /portal/{$}", web.portalAuth(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/portal/endpoints", http.StatusSeeOther)
	}))
	mux.Handle("GET /console/{$}", web.consoleAuth(web.consoleHome))
	for _, area := range []struct {
		base string
		auth func(http.HandlerFunc) http.Handler
	}{{"/portal", web.portalAuth}, {"/console", web.consoleAuth}} {
		mux.Handle("GET "+area.base+"/endpoints", area.auth(web.endpointList))
		mux.Handle("GET "+area.base+"/endpoints/new", area.auth(web.endpointNew))
		mux.Handle("POST "+area.base+"/endpoints", area.auth(web.endpointCreate))
		mux.Handle("GET "+area.base+"/endpoints/{id}", area.auth(web.endpointShow))
		mux.Handle("POST "+area.base+"/endpoints/{id}", area.auth(web.endpointUpdate))
		mux.Handle("POST "+area.base+"/endpoints/{id}/enable", area.auth(web.endpointEnable))
		mux.Handle("POST "+area.base+"/endpoints/{id}/disable", area.auth(web.endpointDisable))
		mux.Handle("POST "+area.base+"/endpoints/{id}/rotate", area.auth(web.endpointRotate))
		mux.Handle("POST "+area.base+"/endpoints/{id}/test", area.auth(web.endpointTest))
		mux.Handle("POST "+area.base+"/endpoints/{id}/recover", area.auth(web.endpointRecover))
		mux.Handle("GET "+area.base+"/recoveries/{id}", area.auth(web.recoveryShow))
		mux.Handle("GET "+area.base+"/deliveries", area.auth(web.deliveryList))
		mux.Handle("GET "+area.base+"/deliveries/{id}", area.auth(web.deliveryShow))
		mux.Handle("POST "+area.base+"/deliveries/{id}/retry", area.auth(web.deliveryRetry))
		mux.Handle("GET "+area.base+"/events", area.auth(web.eventCatalog))
	}
}

// csrfToken is the token a session's forms carry: an HMAC of the session's
// cookie, which pages on other sites can neither read nor compute.
func csrfToken(cookie string) string {
	mac := hmac.New(sha256.New, []byte(cookie))
	mac.Write([]byte("outboxd form"))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// guard runs next with v in the context, after checking a form's CSRF token.
func (web *webApp) guard(w http.ResponseWriter, r *http.Request, v *view, cookie string, next http.HandlerFunc) {
	v.CSRF = csrfToken(cookie)
	v.RiverUI = web.riverUI && v.Console
	ctx := context.WithValue(r.Context(), viewKey{}, v)
	if r.Method == http.MethodGet {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, pageTimeout)
		defer cancel()
	}
	r = r.WithContext(ctx)
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, formBodyMax)
		if err := r.ParseForm(); err != nil {
			web.message(w, r, http.StatusBadRequest, "The form did not arrive whole", "Go back and send it again.")
			return
		}
		if !hmac.Equal([]byte(r.PostForm.Get("csrf")), []byte(v.CSRF)) {
			web.message(w, r, http.StatusForbidden, "This form has expired", "Reload the page and send the form again.")
			return
		}
	}
	next(w, r)
}

// portalAuth runs next for a live portal session (an organization's, perhaps
// narrowed to an agent); without one it says how to get a new link.
func (web *webApp) portalAuth(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cookie, err := r.Cookie(PortalCookie)
		var session *outbox.WebSession
		if err == nil && cookie.Value != "" {
			session, err = web.api.store.WebSessionAuthenticate(r.Context(), cookie.Value)
		}
		switch {
		case err == nil && session == nil, errors.Is(err, http.ErrNoCookie), errors.Is(err, outbox.ErrNotFound):
			if err == nil || errors.Is(err, outbox.ErrNotFound) {
				http.SetCookie(w, web.cookie(r, "", -1))
			}
			web.message(w, r, http.StatusUnauthorized, "You are not signed in to the portal",
				"Your portal session has ended or was never opened in this browser. Ask for a new portal link: a link opens once.")
			return
		case err != nil:
			web.fail(w, r, err)
			return
		case session.Admin():
			web.message(w, r, http.StatusForbidden, "Not a portal session", "Operators use the console at /console/.")
			return
		}
		p := principal{organizationID: session.OrganizationID, agentID: session.AgentID}
		r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
		web.guard(w, r, &view{Base: "/portal", Organization: session.OrganizationID, Agent: session.AgentID}, cookie.Value, next)
	})
}

// consoleAuth runs next for an admin signed in at /login; a browser without
// that session goes to the sign-in form.
func (web *webApp) consoleAuth(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := web.sessions.fromCookie(r)
		switch {
		case errors.Is(err, errUnauthorized) && r.Method == http.MethodGet:
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		case errors.Is(err, errUnauthorized):
			web.message(w, r, http.StatusUnauthorized, "You are not signed in", "Sign in at /login with an admin token.")
			return
		case err != nil:
			web.fail(w, r, err)
			return
		case !p.admin:
			web.message(w, r, http.StatusForbidden, "The console is for operators", "Sign in with an admin token.")
			return
		}
		cookie, _ := r.Cookie(SessionCookie)
		r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
		web.guard(w, r, &view{Base: "/console", Console: true}, cookie.Value, next)
	})
}

// cookie makes the portal's cookie, like the sign-in's: HttpOnly,
// SameSite=Strict, Secure over TLS; maxAge < 0 deletes it.
func (web *webApp) cookie(r *http.Request, value string, maxAge int) *http.Cookie {
	c := web.sessions.cookie(r, value, maxAge)
	c.Name = PortalCookie
	return c
}

// open exchanges a portal link's token for a session cookie, once. It answers
// with a page that moves on to /portal/ by itself: the token leaves the address
// bar, and the next request, started by this site's own page, carries the
// SameSite=Strict cookie even when the link was opened from another site.
func (web *webApp) open(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	opened, err := web.api.store.PortalSessionOpen(r.Context(), token, r.UserAgent())
	switch {
	case errors.Is(err, outbox.ErrNotFound):
		web.logger.InfoContext(r.Context(), "portal link refused: unknown, used, revoked or expired", slog.String("remote", r.RemoteAddr))
		web.message(w, r, http.StatusNotFound, "This portal link does not open",
			"A portal link opens once, and only until it expires. Ask for a new one.")
		return
	case err != nil:
		web.fail(w, r, err)
		return
	}
	maxAge := int(time.Until(opened.ExpiresAt).Seconds())
	http.SetCookie(w, web.cookie(r, opened.SessionToken, max(maxAge, 1)))
	web.logger.InfoContext(r.Context(), "portal link opened", slog.String("portal_session", opened.ID),
		slog.String("organization_id", opened.OrganizationID), slog.String("remote", r.RemoteAddr))
	w.Header().Set("Refresh", "0; url=/portal/endpoints")
	web.render(w, r, http.StatusOK, "opened", "Opening the portal", nil)
}

func (web *webApp) logout(w http.ResponseWriter, r *http.Request) {
	if cookie, err := r.Cookie(PortalCookie); err == nil {
		if err := web.api.store.WebSessionRevoke(r.Context(), cookie.Value); err != nil {
			web.fail(w, r, err)
			return
		}
	}
	http.SetCookie(w, web.cookie(r, "", -1))
	web.message(w, r, http.StatusOK, "Signed out", "You are signed out of the portal. Ask for a new link to come back.")
}

func (web *webApp) static(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if name != "portal.css" && name != "portal.js" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.ServeFileFS(w, r, portalFiles, "web/portal/"+name)
}

// pageView is what the layout renders: the view, the page's title and its data.
type pageView struct {
	*view
	Title string
	Data  any
}

// render writes a page with the security headers every page carries.
func (web *webApp) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	header := w.Header()
	header.Set("Content-Type", "text/html; charset=utf-8")
	header.Set("Content-Security-Policy", webCSP)
	header.Set("X-Frame-Options", "DENY")
	header.Set("X-Content-Type-Options", "nosniff")
	header.Set("Referrer-Policy", "no-referrer")
	header.Set("Cache-Control", "no-store")
	v := viewFrom(r.Context())
	if v == nil {
		v = &view{Base: "/portal"}
	}
	w.WriteHeader(status)
	if err := web.pages[name].Execute(w, &pageView{view: v, Title: title, Data: data}); err != nil {
		web.logger.WarnContext(r.Context(), "render page", slog.String("page", name), slog.String("error", err.Error()))
	}
}

// messageData is the message page's.
type messageData struct{ Heading, Text string }

// message answers with a page that says one thing.
func (web *webApp) message(w http.ResponseWriter, r *http.Request, status int, heading, text string) {
	web.render(w, r, status, "message", heading, &messageData{Heading: heading, Text: text})
}

// fail answers a page's error as the API would: bad input 422, unknown (or
// another organization's) 404, anything else logged and 500.
func (web *webApp) fail(w http.ResponseWriter, r *http.Request, err error) {
	var validation *outbox.ValidationError
	switch {
	case errors.As(err, &validation):
		web.message(w, r, http.StatusUnprocessableEntity, "That did not work", validation.Error())
	case errors.Is(err, outbox.ErrNotFound):
		web.message(w, r, http.StatusNotFound, "Not found", "There is nothing here, or nothing you may see.")
	case errors.Is(err, outbox.ErrConflict):
		web.message(w, r, http.StatusConflict, "That did not work", err.Error())
	case errors.Is(err, context.DeadlineExceeded) && r.Context().Err() != nil:
		web.message(w, r, http.StatusServiceUnavailable, "This took too long",
			"Narrow the filter (an endpoint, a time range, an event id) and try again.")
	case errors.Is(err, outbox.ErrNoEncryptionKey):
		web.message(w, r, http.StatusServiceUnavailable, "Not available", "The server has no encryption key for signing secrets.")
	default:
		web.logger.ErrorContext(r.Context(), "page failed", slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("error", err.Error()))
		web.message(w, r, http.StatusInternalServerError, "Something went wrong", "The server could not do that; see its log.")
	}
}

// PortalSessionCookie opens a portal session for an organization (and,
// optionally, one agent) straight through the store and returns the cookie a
// browser would then hold: for benchmarks and tools that load the portal's
// pages from NewHandler without a browser.
func PortalSessionCookie(ctx context.Context, store *outbox.Store, organizationID, agentID string) (*http.Cookie, error) {
	created, err := store.PortalSessionCreate(ctx, &outbox.PortalSessionCreateParams{OrganizationID: organizationID, AgentID: agentID, CreatedBy: "tool"})
	if err != nil {
		return nil, err
	}
	opened, err := store.PortalSessionOpen(ctx, created.Token, "")
	if err != nil {
		return nil, err
	}
	return &http.Cookie{Name: PortalCookie, Value: opened.SessionToken, Path: "/"}, nil
}

// AdminSessionCookie starts an admin session for adminToken (one of
// Config.AdminTokens) and returns its cookie, which opens the console: for
// benchmarks and tools, as PortalSessionCookie.
func AdminSessionCookie(ctx context.Context, store *outbox.Store, adminToken string) (*http.Cookie, error) {
	digest := sha256.Sum256([]byte(adminToken))
	session, err := store.WebSessionCreate(ctx, &outbox.WebSessionCreateParams{AdminTokenDigest: digest[:], Lifetime: SessionLifetimeDefault})
	if err != nil {
		return nil, err
	}
	return &http.Cookie{Name: SessionCookie, Value: session.Token, Path: "/"}, nil
}
