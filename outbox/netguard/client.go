package netguard

import (
	"cmp"
	"context"
	"net"
	"net/http"
	"time"
)

// Defaults for ClientConfig.
const (
	ConnectTimeoutDefault      = 5 * time.Second
	TLSHandshakeTimeoutDefault = 10 * time.Second
	TimeoutDefault             = 30 * time.Second
	MaxIdleConnsPerHostDefault = 64
)

// ClientConfig tunes NewClient. A nil *ClientConfig uses the defaults.
type ClientConfig struct {
	// ConnectTimeout bounds one TCP connect. Defaults to ConnectTimeoutDefault (5 s).
	ConnectTimeout time.Duration

	// TLSHandshakeTimeout bounds the TLS handshake. Defaults to 10 s.
	TLSHandshakeTimeout time.Duration

	// Timeout bounds a whole request: connect, TLS, sending, and reading the
	// response headers and body. Defaults to TimeoutDefault (30 s).
	Timeout time.Duration

	// MaxIdleConnsPerHost is how many keep-alive connections are kept per receiver.
	// Defaults to 64.
	MaxIdleConnsPerHost int
}

// NewClient returns an HTTP client for webhook delivery: every dial goes through the
// guard, redirects are returned rather than followed (a 3xx is a failed delivery),
// and no proxy is taken from the environment.
func NewClient(g *Guard, config *ClientConfig) *http.Client {
	if config == nil {
		config = &ClientConfig{}
	}
	dialer := &net.Dialer{
		Timeout:   cmp.Or(config.ConnectTimeout, ConnectTimeoutDefault),
		KeepAlive: 30 * time.Second,
	}
	transport := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
			return g.DialContext(ctx, dialer, network, address)
		},
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          0, // no global cap; bounded per host below
		MaxIdleConnsPerHost:   cmp.Or(config.MaxIdleConnsPerHost, MaxIdleConnsPerHostDefault),
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   cmp.Or(config.TLSHandshakeTimeout, TLSHandshakeTimeoutDefault),
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{
		Transport: transport,
		Timeout:   cmp.Or(config.Timeout, TimeoutDefault),
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
