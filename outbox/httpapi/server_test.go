package httpapi_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox/httpapi"
)

func TestServerConfigDefaults(t *testing.T) {
	t.Parallel()

	server := httpapi.NewServer(http.NotFoundHandler(), &httpapi.ServerConfig{WriteTimeout: httpapi.WriteTimeoutFor(30 * time.Second)}).HTTPServer()
	require.Equal(t, 10*time.Second, server.ReadHeaderTimeout)
	require.Equal(t, 30*time.Second, server.ReadTimeout)
	require.Equal(t, 60*time.Second, server.WriteTimeout, "a subscription test may take the whole request timeout")
	require.Equal(t, 120*time.Second, server.IdleTimeout)
	require.Equal(t, 64<<10, server.MaxHeaderBytes)

	short := httpapi.NewServer(http.NotFoundHandler(), &httpapi.ServerConfig{ReadTimeout: time.Second, WriteTimeout: time.Second}).HTTPServer()
	require.Equal(t, time.Second, short.ReadHeaderTimeout, "headers cannot take longer than the whole request")
}

// Past MaxConnections, a new connection waits unaccepted (in the kernel's
// backlog) until one of the open ones closes; then it is served.
func TestConnectionCap(t *testing.T) {
	t.Parallel()

	var accepted atomic.Int64
	server := httpapi.NewServer(httpapi.NewHandler(nil), &httpapi.ServerConfig{WriteTimeout: 5 * time.Second, MaxConnections: 3})
	server.HTTPServer().ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			accepted.Add(1)
		}
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- server.Serve(listener) }()
	t.Cleanup(func() { _ = server.Close() })
	dial := func() net.Conn {
		conn, err := net.Dial("tcp", listener.Addr().String())
		require.NoError(t, err)
		t.Cleanup(func() { _ = conn.Close() })
		return conn
	}

	var held []net.Conn
	for range 3 {
		held = append(held, dial())
	}
	require.Eventually(t, func() bool { return accepted.Load() == 3 }, 10*time.Second, 5*time.Millisecond)

	waiting := dial()
	_, err = io.WriteString(waiting, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	require.Never(t, func() bool { return accepted.Load() > 3 }, 200*time.Millisecond, 10*time.Millisecond, "a fourth connection is not accepted")

	require.NoError(t, held[0].Close())
	require.NoError(t, waiting.SetReadDeadline(time.Now().Add(10*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(waiting), nil)
	require.NoError(t, err, "served once a slot is free")
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.EqualValues(t, 4, accepted.Load())

	// Closing the server releases an Accept waiting for a slot.
	for range 3 {
		dial()
	}
	require.NoError(t, server.Close())
	select {
	case err := <-served:
		require.ErrorIs(t, err, http.ErrServerClosed)
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
}
