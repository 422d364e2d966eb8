package httpapi

import (
	"cmp"
	"context"
	"crypto/sha256"
	"embed"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/outboxd/outboxd/outbox"
)

// This file holds browser sign-in for the River UI: a form at /login that takes
// an admin token and starts a server-side session (outbox.web_sessions) held in
// a cookie, /login/basic for the browser's own prompt, and /logout. The /v1 API
// never reads the cookie: it stays bearer-only.

// SessionCookie names the cookie of a browser session.
const SessionCookie = "outboxd_session"

// SessionLifetimeDefault is how long a browser session lasts by default.
const SessionLifetimeDefault = 12 * time.Hour

// loginBodyMax bounds the sign-in form.
const loginBodyMax = 8 << 10

//go:embed web/login.html web/style.css
var web embed.FS

var loginTemplate = template.Must(template.ParseFS(web, "web/login.html"))

// loginCSP allows the page its own stylesheet and form and nothing else: no
// script, no frame, no other origin.
const loginCSP = "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// sessions signs browsers in and out and recognises them.
type sessions struct {
	store    *outbox.Store
	auth     *authenticator
	lifetime time.Duration
	logger   *slog.Logger
}

// fromCookie returns who the request's session cookie signs in, or
// errUnauthorized when it has none or its session has ended. An admin session
// lasts only while the admin token it signed in with is configured.
func (s *sessions) fromCookie(r *http.Request) (principal, error) {
	cookie, err := r.Cookie(SessionCookie)
	if err != nil || cookie.Value == "" {
		return principal{}, errUnauthorized
	}
	session, err := s.store.WebSessionAuthenticate(r.Context(), cookie.Value)
	switch {
	case errors.Is(err, outbox.ErrNotFound):
		return principal{}, errUnauthorized
	case err != nil:
		return principal{}, err
	case session.Admin() && !s.auth.isAdminDigest(session.AdminTokenDigest):
		return principal{}, errUnauthorized
	case session.Admin():
		return principal{admin: true}, nil
	}
	return principal{organizationID: session.OrganizationID}, nil
}

// require guards what browsers open (the River UI), for admins only: a token
// in Authorization, as for the API, or else the session cookie. A page load
// without either goes to the sign-in form; other requests get 401.
func (s *sessions) require(next http.Handler, onError func(http.ResponseWriter, *http.Request, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		withAuthorization := r.Header.Get("Authorization") != ""
		var (
			p   principal
			err error
		)
		if withAuthorization {
			p, err = s.auth.authenticate(r.Context(), credentials(r))
		} else {
			p, err = s.fromCookie(r)
		}
		switch {
		case errors.Is(err, errUnauthorized) && !withAuthorization && isPageLoad(r):
			if _, cookieErr := r.Cookie(SessionCookie); cookieErr == nil {
				http.SetCookie(w, s.cookie(r, "", -1)) // ended: let it go
			}
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		case errors.Is(err, errUnauthorized):
			unauthorized(w)
		case err != nil:
			onError(w, r, err)
		case !p.admin:
			writeProblem(w, http.StatusForbidden, "the River UI needs an admin token; organization tokens reach only the /v1 API")
		default:
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
		}
	})
}

// isPageLoad reports whether a request is a browser loading a page (rather
// than a script or an API client).
func isPageLoad(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.Contains(r.Header.Get("Accept"), "text/html")
}

// cookie makes the session cookie: HttpOnly, SameSite=Strict, for the whole
// site, and Secure when the request came over TLS (directly, or through a proxy
// that says so in X-Forwarded-Proto). maxAge < 0 deletes it.
func (s *sessions) cookie(r *http.Request, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name:     SessionCookie,
		Value:    value,
		Path:     "/",
		MaxAge:   maxAge,
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
		Secure:   r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https"),
	}
}

// closed says why nobody can sign in, when no admin token is configured.
func (s *sessions) closed() string {
	if len(s.auth.adminDigests) == 0 {
		return "No admin token is configured (OUTBOXD_API_TOKEN), so nobody can sign in."
	}
	return ""
}

// loginPage is what the sign-in template shows.
type loginPage struct {
	Next     string
	Error    string
	SignedIn bool
}

func (s *sessions) render(w http.ResponseWriter, status int, page *loginPage) {
	header := w.Header()
	header.Set("Content-Type", "text/html; charset=utf-8")
	header.Set("Content-Security-Policy", loginCSP)
	header.Set("X-Frame-Options", "DENY")
	header.Set("X-Content-Type-Options", "nosniff")
	header.Set("Referrer-Policy", "no-referrer")
	header.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := loginTemplate.Execute(w, page); err != nil {
		s.logger.Warn("render sign-in page", slog.String("error", err.Error()))
	}
}

// safeNext returns where to go after signing in: a path on this site, never
// another origin ("//evil.example", "/\evil.example", "https://…"), and never
// the sign-in pages themselves. Anything else goes to the River UI.
func safeNext(raw string) string {
	const home = "/riverui/"
	if !strings.HasPrefix(raw, "/") || strings.HasPrefix(raw, "//") || strings.ContainsRune(raw, '\\') {
		return home
	}
	for _, c := range raw {
		if c < 0x20 || c == 0x7f {
			return home
		}
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return home
	}
	if u.Path == "/login" || strings.HasPrefix(u.Path, "/login/") || u.Path == "/logout" {
		return home
	}
	return raw
}

// signIn starts an admin session for token and answers with its cookie and a
// redirect to next.
func (s *sessions) signIn(w http.ResponseWriter, r *http.Request, token, next, how string) {
	digest := sha256.Sum256([]byte(token))
	session, err := s.store.WebSessionCreate(r.Context(), &outbox.WebSessionCreateParams{
		AdminTokenDigest: digest[:],
		UserAgent:        r.UserAgent(),
		Lifetime:         s.lifetime,
	})
	if err != nil {
		s.logger.ErrorContext(r.Context(), "start web session", slog.String("error", err.Error()))
		s.render(w, http.StatusInternalServerError, &loginPage{Next: next, Error: "The server could not start a session; see its log."})
		return
	}
	http.SetCookie(w, s.cookie(r, session.Token, int(s.lifetime.Seconds())))
	s.logger.InfoContext(r.Context(), "signed in to the River UI", slog.String("session", session.ID), slog.String("with", how), slog.String("remote", r.RemoteAddr))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// refuse answers a sign-in that failed, on the form.
func (s *sessions) refuse(w http.ResponseWriter, r *http.Request, p principal, err error, next string) {
	switch {
	case errors.Is(err, errUnauthorized):
		s.logger.InfoContext(r.Context(), "sign-in refused: not a valid token", slog.String("remote", r.RemoteAddr))
		s.render(w, http.StatusUnauthorized, &loginPage{Next: next, Error: cmp.Or(s.closed(), "That is not a valid admin token.")})
	case err != nil:
		s.logger.ErrorContext(r.Context(), "sign-in", slog.String("error", err.Error()))
		s.render(w, http.StatusInternalServerError, &loginPage{Next: next, Error: "The server could not check the token; see its log."})
	case !p.admin:
		s.logger.InfoContext(r.Context(), "sign-in refused: an organization token", slog.String("remote", r.RemoteAddr))
		s.render(w, http.StatusForbidden, &loginPage{Next: next, Error: "An organization token cannot open the River UI: sign in with an admin token."})
	}
}

// mount adds the sign-in routes to mux.
func (s *sessions) mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		next := safeNext(r.URL.Query().Get("next"))
		p, err := s.fromCookie(r)
		if err == nil && p.admin {
			if r.URL.Query().Has("next") {
				http.Redirect(w, r, next, http.StatusSeeOther)
				return
			}
			s.render(w, http.StatusOK, &loginPage{Next: next, SignedIn: true})
			return
		}
		s.render(w, http.StatusOK, &loginPage{Next: next, Error: s.closed()})
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, loginBodyMax)
		if err := r.ParseForm(); err != nil {
			s.render(w, http.StatusBadRequest, &loginPage{Next: "/riverui/", Error: "The form did not arrive whole; try again."})
			return
		}
		next := safeNext(r.PostForm.Get("next"))
		token := r.PostForm.Get("token")
		p, err := s.auth.authenticate(r.Context(), token)
		if err != nil || !p.admin {
			s.refuse(w, r, p, err, next)
			return
		}
		s.signIn(w, r, token, next, "form")
	})
	// The browser's own prompt: a GET that starts a session, so it refuses to
	// run for another site's page.
	mux.HandleFunc("GET /login/basic", func(w http.ResponseWriter, r *http.Request) {
		next := safeNext(r.URL.Query().Get("next"))
		if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
			s.render(w, http.StatusForbidden, &loginPage{Next: next, Error: "Open the sign-in page itself to sign in."})
			return
		}
		token := credentials(r)
		p, err := s.auth.authenticate(r.Context(), token)
		if errors.Is(err, errUnauthorized) {
			addChallenges(w)
			s.render(w, http.StatusUnauthorized, &loginPage{Next: next, Error: "Your browser did not send a valid admin token; sign in here instead."})
			return
		}
		if err != nil || !p.admin {
			s.refuse(w, r, p, err, next)
			return
		}
		s.signIn(w, r, token, next, "basic auth")
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		if cookie, err := r.Cookie(SessionCookie); err == nil && cookie.Value != "" {
			if err := s.store.WebSessionRevoke(r.Context(), cookie.Value); err != nil {
				s.logger.ErrorContext(r.Context(), "sign out", slog.String("error", err.Error()))
				s.render(w, http.StatusInternalServerError, &loginPage{SignedIn: true, Next: "/riverui/", Error: "The server could not end the session; see its log."})
				return
			}
		}
		http.SetCookie(w, s.cookie(r, "", -1))
		http.Redirect(w, r, "/login", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /login/style.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		http.ServeFileFS(w, r, web, "web/style.css")
	})
}
