package jobs

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
)

// loggedRecord is one record a logRecorder kept, its attributes as text.
type loggedRecord struct {
	Level   slog.Level
	Message string
	Attrs   map[string]string
}

// logRecorder is a slog.Handler that keeps every record, and the text a text
// handler would have written, for tests to look through.
type logRecorder struct {
	shared *logRecorderShared
	attrs  []slog.Attr
	group  string
}

type logRecorderShared struct {
	mu      sync.Mutex
	records []loggedRecord
	text    bytes.Buffer
	handler slog.Handler
}

func newLogRecorder() *logRecorder {
	shared := &logRecorderShared{}
	shared.handler = slog.NewTextHandler(&shared.text, &slog.HandlerOptions{Level: slog.LevelDebug})
	return &logRecorder{shared: shared}
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecorder) Handle(ctx context.Context, r slog.Record) error {
	rec := loggedRecord{Level: r.Level, Message: r.Message, Attrs: map[string]string{}}
	add := func(a slog.Attr) {
		key := a.Key
		if h.group != "" {
			key = h.group + "." + key
		}
		rec.Attrs[key] = a.Value.Resolve().String()
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(func(a slog.Attr) bool { add(a); return true })
	h.shared.mu.Lock()
	defer h.shared.mu.Unlock()
	h.shared.records = append(h.shared.records, rec)
	handler := h.shared.handler.WithAttrs(h.attrs)
	if h.group != "" {
		handler = handler.WithGroup(h.group)
	}
	return handler.Handle(ctx, r)
}

func (h *logRecorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &logRecorder{shared: h.shared, attrs: append(append([]slog.Attr{}, h.attrs...), attrs...), group: h.group}
}

func (h *logRecorder) WithGroup(name string) slog.Handler {
	group := name
	if h.group != "" {
		group = h.group + "." + name
	}
	return &logRecorder{shared: h.shared, attrs: h.attrs, group: group}
}

// records returns the records kept so far that match keep (all when nil).
func (h *logRecorder) records(keep func(loggedRecord) bool) []loggedRecord {
	h.shared.mu.Lock()
	defer h.shared.mu.Unlock()
	var out []loggedRecord
	for _, r := range h.shared.records {
		if keep == nil || keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// text is everything logged so far, as a text handler writes it.
func (h *logRecorder) text() string {
	h.shared.mu.Lock()
	defer h.shared.mu.Unlock()
	return h.shared.text.String()
}

// summary lists records one a line, for failure messages.
func summary(records []loggedRecord) string {
	var b strings.Builder
	for _, r := range records {
		fmt.Fprintf(&b, "%s %s %v\n", r.Level, r.Message, r.Attrs)
	}
	return b.String()
}
