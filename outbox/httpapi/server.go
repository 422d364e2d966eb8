package httpapi

import (
	"cmp"
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// This file holds the HTTP server's limits, so that slow or idle clients cannot
// hold connections (and their goroutines and file descriptors) for ever.

// Defaults for ServerConfig.
const (
	ReadHeaderTimeoutDefault = 10 * time.Second
	ReadTimeoutDefault       = 30 * time.Second
	IdleTimeoutDefault       = 120 * time.Second
	MaxHeaderBytesDefault    = 64 << 10
	MaxConnectionsDefault    = 512

	// WriteTimeoutMargin is what WriteTimeoutFor adds to the longest outbound
	// request, for the database work around it.
	WriteTimeoutMargin = 30 * time.Second
)

// ServerConfig bounds the HTTP server of outboxd run. Zero values take the
// defaults above.
type ServerConfig struct {
	// ReadHeaderTimeout bounds reading a request's headers. Default 10s, and at
	// most ReadTimeout.
	ReadHeaderTimeout time.Duration

	// ReadTimeout bounds reading a whole request, body included, from its first
	// byte; a body still arriving then is answered 408 and the connection
	// closed. Default 30s (bodies are at most 1 MiB).
	ReadTimeout time.Duration

	// WriteTimeout bounds handling a request and writing its answer, from the
	// end of its headers. It must exceed the longest request: POST
	// /v1/subscriptions/{id}/test waits for a delivery attempt, so use
	// WriteTimeoutFor(the daemon's request timeout). Required.
	WriteTimeout time.Duration

	// IdleTimeout closes a keep-alive connection that waits this long for its
	// next request. Default 120s: longer than the 60s idle timeout of common
	// load balancers, which must close a shared connection first.
	IdleTimeout time.Duration

	// MaxHeaderBytes bounds a request's headers. Default 64 KiB.
	MaxHeaderBytes int

	// MaxConnections caps the connections open at once (see LimitListener).
	// Default 512.
	MaxConnections int

	// Logger receives the server's own errors (a failed TLS handshake, a
	// handler's misuse of the response). Defaults to discarding them.
	Logger *slog.Logger
}

// WriteTimeoutFor is the write timeout that lets the longest request finish: a
// subscription test's delivery attempt, bounded by the daemon's request
// timeout, plus WriteTimeoutMargin.
func WriteTimeoutFor(requestTimeout time.Duration) time.Duration {
	return requestTimeout + WriteTimeoutMargin
}

func (c *ServerConfig) withDefaults() *ServerConfig {
	out := *c
	out.ReadTimeout = cmp.Or(out.ReadTimeout, ReadTimeoutDefault)
	out.ReadHeaderTimeout = min(cmp.Or(out.ReadHeaderTimeout, ReadHeaderTimeoutDefault), out.ReadTimeout)
	out.IdleTimeout = cmp.Or(out.IdleTimeout, IdleTimeoutDefault)
	out.MaxHeaderBytes = cmp.Or(out.MaxHeaderBytes, MaxHeaderBytesDefault)
	out.MaxConnections = cmp.Or(out.MaxConnections, MaxConnectionsDefault)
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	return &out
}

// Server serves a handler with the limits of a ServerConfig.
type Server struct {
	server         *http.Server
	maxConnections int
}

// NewServer returns a server for handler (usually NewHandler's).
func NewServer(handler http.Handler, config *ServerConfig) *Server {
	config = config.withDefaults()
	return &Server{
		server: &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: config.ReadHeaderTimeout,
			ReadTimeout:       config.ReadTimeout,
			WriteTimeout:      config.WriteTimeout,
			IdleTimeout:       config.IdleTimeout,
			MaxHeaderBytes:    config.MaxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(config.Logger.Handler(), slog.LevelWarn),
		},
		maxConnections: config.MaxConnections,
	}
}

// HTTPServer is the underlying server, for its settings.
func (s *Server) HTTPServer() *http.Server { return s.server }

// Serve accepts connections on listener, at most MaxConnections at once, until
// Shutdown or Close. It returns http.ErrServerClosed after those.
func (s *Server) Serve(listener net.Listener) error {
	return s.server.Serve(LimitListener(listener, s.maxConnections))
}

// Shutdown stops accepting, waits for requests in progress until ctx ends, and
// closes idle connections; see http.Server.Shutdown.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.server.Shutdown(ctx)
}

// Close closes the listener and every connection at once.
func (s *Server) Close() error { return s.server.Close() }

// LimitListener returns a listener that keeps at most max of inner's
// connections open at once: past that, Accept waits until one closes, and new
// connections wait in the kernel's backlog. With the server's timeouts, a slot
// held by a slow or idle client is freed within ReadTimeout or IdleTimeout.
func LimitListener(inner net.Listener, max int) net.Listener {
	return &limitListener{Listener: inner, slots: make(chan struct{}, max), closed: make(chan struct{})}
}

type limitListener struct {
	net.Listener
	slots     chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.closed:
		return nil, net.ErrClosed
	}
	conn, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: conn, release: func() { <-l.slots }}, nil
}

func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.closed) })
	return err
}

// limitConn gives its slot back when it is closed, once.
type limitConn struct {
	net.Conn
	releaseOnce sync.Once
	release     func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.releaseOnce.Do(c.release)
	return err
}

// CloseWrite half-closes a TCP connection, which http.Server does before closing
// one with unread request data, so the client sees the answer.
func (c *limitConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
