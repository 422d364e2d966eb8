package jobs

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Defaults for the database outage reports.
const (
	// OutageReminderDefault is how often a database outage is reported again
	// while it lasts.
	OutageReminderDefault = time.Minute
	// outageProbeInterval is how often the database is pinged while it is down.
	outageProbeInterval = time.Second
	// outageProbeTimeout bounds one ping.
	outageProbeTimeout = 2 * time.Second
	// outageSettle is how long after an outage failures that calls begun during
	// it report late are taken for its stragglers, not for a new outage.
	outageSettle = 2 * time.Second
)

// dbHealth turns a database outage into three kinds of log line instead of one
// error per failed query from every part of the daemon (a 20 s outage used to
// log over 200): one when it starts, a reminder every OutageReminder with how
// long it has lasted and how many failures it caused, and one when it ends,
// with how long it lasted.
//
// The daemon's parts report each failed database call (failed), which tells
// them whether it was a connection failure they need not log, and each call
// that worked (succeeded). River's logs, which carry errors only as text, pass
// through outageLogHandler, which holds back River's warnings and errors while
// the database is down (and starts an outage on one that says a connection
// failed). While down, the service pings the database every second, so the
// outage ends as soon as it answers even if nothing else tries.
type dbHealth struct {
	logger   *slog.Logger
	ping     func(context.Context) error
	now      func() time.Time
	reminder time.Duration
	probe    time.Duration
	// recovered is called (outside the lock) when an outage ends.
	recovered func()

	down atomic.Bool // the fast path for succeeded

	mu       sync.Mutex
	since    time.Time // when the outage began
	failures int       // failed calls reported, and River records held back
	held     int       // of which log records held back
	lastErr  string
	reminded time.Time // when it was last reported
	ended    time.Time // when the last outage ended

	wake    chan struct{} // an outage began
	cancel  context.CancelFunc
	stopped chan struct{}
}

func newDBHealth(logger *slog.Logger, ping func(context.Context) error, reminder time.Duration) *dbHealth {
	if reminder <= 0 {
		reminder = OutageReminderDefault
	}
	return &dbHealth{
		logger:    logger.With(slog.String("component", "database")),
		ping:      ping,
		now:       time.Now,
		reminder:  reminder,
		probe:     outageProbeInterval,
		recovered: func() {},
		wake:      make(chan struct{}, 1),
	}
}

// failed reports a failed database call. It returns true when err is a
// connection failure, which the outage's reports cover: the caller logs
// nothing. Any other error is the caller's to log.
func (h *dbHealth) failed(ctx context.Context, err error) bool {
	if !isConnectionError(err) {
		return false
	}
	h.fail(ctx, err.Error(), false)
	return true
}

// fail counts a failure (held: a log record held back) and starts an outage
// if none is on.
func (h *dbHealth) fail(ctx context.Context, errText string, held bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failures++
	if held {
		h.held++
	}
	h.lastErr = errText
	if h.down.Load() {
		return
	}
	now := h.now()
	if !h.ended.IsZero() && now.Sub(h.ended) < outageSettle {
		h.failures, h.held = 0, 0 // a straggler of the outage that just ended
		return
	}
	h.since, h.reminded = now, now
	h.down.Store(true)
	h.logger.ErrorContext(ctx, "database unreachable; the errors it causes are held back, reported every "+h.reminder.String()+" until it answers again",
		slog.String("error", errText))
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// succeeded reports a database call begun at began that worked, which ends an
// outage that began before it (one that began while the call was under way
// says nothing about the database now).
func (h *dbHealth) succeeded(ctx context.Context, began time.Time) {
	if !h.down.Load() {
		return
	}
	h.mu.Lock()
	if !h.down.Load() || began.Before(h.since) {
		h.mu.Unlock()
		return
	}
	h.down.Store(false)
	h.ended = h.now()
	lasted := h.ended.Sub(h.since)
	h.logger.WarnContext(ctx, "database reachable again after "+roundDuration(lasted).String(),
		slog.Duration("lasted", lasted), slog.Int("failures", h.failures), slog.Int("log_records_held_back", h.held))
	h.failures, h.held, h.lastErr = 0, 0, ""
	h.mu.Unlock()
	h.recovered()
}

// holdBack reports whether to drop a warning or error: one whose error says a
// connection failed (which starts an outage if none is on), and, with
// everything, any while the database is down. A record held back counts as a
// failure.
func (h *dbHealth) holdBack(ctx context.Context, r slog.Record, everything bool) bool {
	if r.Level < slog.LevelWarn {
		return false
	}
	errText := recordError(r)
	if !looksLikeConnectionError(errText) && !(everything && h.down.Load()) {
		return false
	}
	if errText == "" {
		errText = r.Message
	}
	h.fail(ctx, errText, true)
	return true
}

// remind reports an outage again once OutageReminder has passed since it was
// last reported.
func (h *dbHealth) remind(ctx context.Context) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	if !h.down.Load() || now.Sub(h.reminded) < h.reminder {
		return
	}
	h.reminded = now
	lasted := now.Sub(h.since)
	h.logger.ErrorContext(ctx, "database still unreachable after "+roundDuration(lasted).String(),
		slog.Duration("lasted", lasted), slog.Int("failures", h.failures), slog.Int("log_records_held_back", h.held),
		slog.String("last_error", h.lastErr))
}

// start runs the service: while the database is down it pings it every
// second and sends the reminders.
func (h *dbHealth) start(ctx context.Context) {
	ctx, h.cancel = context.WithCancel(context.WithoutCancel(ctx))
	h.stopped = make(chan struct{})
	go h.run(ctx)
}

func (h *dbHealth) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	<-h.stopped
}

func (h *dbHealth) run(ctx context.Context) {
	defer close(h.stopped)
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.wake:
		}
		timer := time.NewTimer(h.probe)
		for h.down.Load() {
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
			began := h.now()
			pingCtx, cancel := context.WithTimeout(ctx, outageProbeTimeout)
			err := h.ping(pingCtx)
			cancel()
			switch {
			case ctx.Err() != nil:
				return
			case err == nil:
				h.succeeded(ctx, began)
			default:
				h.mu.Lock()
				h.lastErr = err.Error()
				h.mu.Unlock()
				h.remind(ctx)
			}
			timer.Reset(h.probe)
		}
		timer.Stop()
	}
}

// isConnectionError reports whether err says the database could not be
// reached or dropped the connection, rather than refusing a query.
func isConnectionError(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var (
		connectErr *pgconn.ConnectError
		pgErr      *pgconn.PgError
		netErr     net.Error
	)
	switch {
	case errors.As(err, &connectErr), errors.Is(err, pgconn.ErrConnClosed):
		return true
	case errors.As(err, &pgErr):
		// Class 08: connection exception; 57P01-03: the server is shutting down,
		// crashed or is starting up.
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	case errors.As(err, &netErr), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	}
	return looksLikeConnectionError(err.Error())
}

// connectionErrorTexts are what pgx's connection failures say, for errors that
// reach us only as text (River's logs).
var connectionErrorTexts = []string{
	"failed to connect to", "conn closed", "unexpected EOF", "connection reset by peer", "connection refused",
	"broken pipe", "no route to host", "SQLSTATE 57P01", "SQLSTATE 57P02", "SQLSTATE 57P03", "SQLSTATE 08",
}

func looksLikeConnectionError(text string) bool {
	for _, s := range connectionErrorTexts {
		if strings.Contains(text, s) {
			return true
		}
	}
	return false
}

// recordError is the text of a record's error attribute ("err" or "error").
func recordError(r slog.Record) string {
	var text string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" || a.Key == "error" {
			text = a.Value.Resolve().String()
			return false
		}
		return true
	})
	return text
}

// roundDuration rounds d for a message: to the second, or the millisecond
// below a second.
func roundDuration(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Second)
}

// outageLogHandler holds back warnings and errors that a database outage
// causes; dbHealth counts them in its reports. The daemon's own parts log
// through one that holds back what says a connection failed; River, the River
// UI and the HTTP API, which cannot tell an outage from another failure,
// through one that holds back every warning and error while the database is
// down (everything).
type outageLogHandler struct {
	slog.Handler
	health     *dbHealth
	everything bool
}

func (h *outageLogHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.health.holdBack(ctx, r, h.everything) {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h *outageLogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &outageLogHandler{Handler: h.Handler.WithAttrs(attrs), health: h.health, everything: h.everything}
}

func (h *outageLogHandler) WithGroup(name string) slog.Handler {
	return &outageLogHandler{Handler: h.Handler.WithGroup(name), health: h.health, everything: h.everything}
}
