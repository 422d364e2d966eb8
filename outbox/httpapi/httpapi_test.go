package httpapi_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox/httpapi"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, err := io.ReadAll(rec.Result().Body)
	require.NoError(t, err)
	return rec.Code, string(body)
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()

	var readyErr error
	var degraded []string
	h := httpapi.NewHandler(&httpapi.Config{
		Ready:    func(context.Context) error { return readyErr },
		Degraded: func(context.Context) []string { return degraded },
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "outboxd_up 1\n")
		}),
	})

	code, body := get(t, h, "/healthz")
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `{"status":"ok"}`, body)

	code, body = get(t, h, "/readyz")
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `{"status":"ready"}`, body)

	degraded = []string{"redis wake-ups: connection refused (the relay polls instead)"}
	code, body = get(t, h, "/readyz")
	require.Equal(t, http.StatusOK, code, "degraded is still ready")
	require.JSONEq(t, `{"status":"degraded","degraded":["redis wake-ups: connection refused (the relay polls instead)"]}`, body)

	readyErr = errors.New("database: connection refused")
	code, body = get(t, h, "/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.JSONEq(t, `{"status":"unavailable","error":"database: connection refused"}`, body)

	code, body = get(t, h, "/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "outboxd_up 1\n", body)

	code, _ = get(t, h, "/nope")
	require.Equal(t, http.StatusNotFound, code)
}
