// Package httpapi owns outboxd's HTTP surface: liveness (/healthz), readiness
// (/readyz) and Prometheus metrics (/metrics). It does not import the jobs package:
// what it needs from the daemon (is it ready?) comes in as functions, which
// cmd/outboxd wires up.
package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"
)

// Config configures the handler. A nil *Config serves only /healthz.
type Config struct {
	// Logger receives request errors. Defaults to discarding them.
	Logger *slog.Logger

	// Ready reports whether the daemon can do its work; /readyz answers 503 with
	// the error while it returns one. Nil means always ready.
	Ready func(ctx context.Context) error

	// Metrics serves /metrics. Nil leaves /metrics unserved.
	Metrics http.Handler
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
		writeJSON(w, logger, http.StatusOK, map[string]string{"status": "ready"})
	})
	if config.Metrics != nil {
		mux.Handle("GET /metrics", config.Metrics)
	}
	return mux
}

func writeJSON(w http.ResponseWriter, logger *slog.Logger, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		logger.Warn("write response", slog.String("error", err.Error()))
	}
}
