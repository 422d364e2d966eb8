package jobs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/netguard"
	"github.com/outboxd/outboxd/outbox/signing"
)

// Defaults for DeliveryConfig.
const (
	RequestTimeoutDefault    = 30 * time.Second
	RetryAfterMaxDefault     = time.Hour
	ResponseReadLimitDefault = 64 << 10
	InFlightWaitDefault      = 50 * time.Millisecond

	CircuitThresholdDefault    = 5
	CircuitBackoffMinDefault   = 5 * time.Second
	CircuitBackoffMaxDefault   = 5 * time.Minute
	CircuitDisableAfterDefault = 5 * 24 * time.Hour
)

// DeliveryConfig tunes delivery. Zero values take the defaults.
type DeliveryConfig struct {
	// RetrySchedule is the wait before each retry for subscriptions without their
	// own. Defaults to DefaultRetrySchedule (8 attempts over about 27.6 h).
	RetrySchedule outbox.RetrySchedule

	// RequestTimeout bounds one attempt: connect, TLS, request and response.
	// Defaults to 30 s.
	RequestTimeout time.Duration

	// ConnectTimeout bounds the TCP connect. Defaults to 5 s.
	ConnectTimeout time.Duration

	// RetryAfterMax caps how far a receiver's Retry-After can push the next
	// attempt beyond the schedule. Defaults to 1 h.
	RetryAfterMax time.Duration

	// ResponseReadLimit is how much of a response body is read before the
	// connection is dropped. Defaults to 64 KiB.
	ResponseReadLimit int64

	// UserAgent is sent with every request. Defaults to "outboxd".
	UserAgent string

	// MaxInFlightDefault caps each subscription's deliveries in flight at once on
	// this daemon, so one slow or hanging endpoint cannot take every worker. A
	// subscription's own max_in_flight caps it across daemons as well (and
	// lowers this cap when it is lower). Defaults to half the daemon's delivery
	// workers.
	MaxInFlightDefault int

	// InFlightWait is how long an attempt over its subscription's cap waits for a
	// slot before it is deferred, when the subscription's attempts in flight are
	// quick (none older than a second): a fast endpoint frees a slot in
	// milliseconds. Defaults to 50 ms.
	InFlightWait time.Duration

	// Circuit is the circuit breaker: after Threshold failures in a row (default
	// 5) a subscription's deliveries are held back, without spending attempts,
	// for BackoffMin (5 s) doubling to BackoffMax (5 min) while probes keep
	// failing; after DisableAfter (5 days) of nothing but failures it is disabled.
	// A negative DisableAfter never disables.
	Circuit outbox.CircuitPolicy
}

func (c DeliveryConfig) withDefaults() DeliveryConfig {
	if c.RetrySchedule == nil {
		c.RetrySchedule = DefaultRetrySchedule
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = RequestTimeoutDefault
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = netguard.ConnectTimeoutDefault
	}
	if c.RetryAfterMax <= 0 {
		c.RetryAfterMax = RetryAfterMaxDefault
	}
	if c.ResponseReadLimit <= 0 {
		c.ResponseReadLimit = ResponseReadLimitDefault
	}
	if c.UserAgent == "" {
		c.UserAgent = "outboxd"
	}
	if c.InFlightWait <= 0 {
		c.InFlightWait = InFlightWaitDefault
	}
	if c.Circuit.Threshold <= 0 {
		c.Circuit.Threshold = CircuitThresholdDefault
	}
	if c.Circuit.BackoffMin <= 0 {
		c.Circuit.BackoffMin = CircuitBackoffMinDefault
	}
	if c.Circuit.BackoffMax <= 0 {
		c.Circuit.BackoffMax = CircuitBackoffMaxDefault
	}
	if c.Circuit.DisableAfter == 0 {
		c.Circuit.DisableAfter = CircuitDisableAfterDefault
	} // negative stays: never (outbox.CircuitPolicy takes any DisableAfter <= 0 so)
	return c
}

// probeWindow is how long the circuit stays shut to other deliveries while one
// probes: the probe's whole attempt.
func (c DeliveryConfig) probeWindow() time.Duration {
	return c.RequestTimeout + 5*time.Second
}

// deliveryWorker makes one attempt of one delivery per Work call.
type deliveryWorker struct {
	river.WorkerDefaults[DeliveryArgs]

	config   DeliveryConfig
	logger   *slog.Logger
	pool     *pgxpool.Pool
	store    *outbox.Store
	client   *http.Client
	metrics  *Metrics
	inflight *inflightLimiter
	targets  *targetLoader

	// now and random are the clock and the jitter source; tests replace them.
	now    func() time.Time
	random func() float64

	// blockedWarnings limits the warnings about subscriptions whose host is a
	// blocked address to one per subscription per blockedWarningInterval.
	blockedWarnings *logLimiter

	// nextRetry carries the time of the next attempt from Work, which knows the
	// subscription's schedule and the receiver's Retry-After, to NextRetry, which
	// River calls right after Work returns an error. Keyed by job id.
	nextRetry sync.Map
}

func newDeliveryWorker(config DeliveryConfig, logger *slog.Logger, pool *pgxpool.Pool, store *outbox.Store, guard *netguard.Guard, metrics *Metrics, maxConnsPerHost int) *deliveryWorker {
	config = config.withDefaults()
	if config.MaxInFlightDefault <= 0 {
		config.MaxInFlightDefault = max(1, maxConnsPerHost/2)
	}
	return &deliveryWorker{
		config:   config,
		logger:   logger.With(slog.String("component", "delivery")),
		pool:     pool,
		store:    store,
		inflight: newInflightLimiter(time.Now),
		targets:  &targetLoader{store: store},
		client: netguard.NewClient(guard, &netguard.ClientConfig{
			ConnectTimeout:      config.ConnectTimeout,
			Timeout:             config.RequestTimeout,
			MaxIdleConnsPerHost: maxConnsPerHost,
		}),
		metrics: metrics,
		now:     time.Now,
		random:  rand.Float64,

		blockedWarnings: newLogLimiter(blockedWarningInterval, time.Now),
	}
}

// blockedWarningInterval is how often a subscription whose deliveries keep
// being refused for a blocked address is reported again.
const blockedWarningInterval = 10 * time.Minute

// warnBlocked tells operators that a subscription's deliveries are refused
// because its host is (or resolves to) a blocked address: the first time, and
// then every blockedWarningInterval while it goes on. It names the host and
// the address, never the URL (whose query may carry a token) or a header.
func (w *deliveryWorker) warnBlocked(ctx context.Context, target *outbox.DeliveryTarget, err error) {
	var blocked *netguard.BlockedError
	if !errors.As(err, &blocked) {
		return
	}
	held, ok := w.blockedWarnings.allow(target.SubscriptionID)
	if !ok {
		return
	}
	w.logger.WarnContext(ctx, "delivery refused: the subscription's host is a blocked address; list it in --allow-private-targets only if it must be reached",
		slog.String("subscription_id", target.SubscriptionID),
		slog.String("host", blocked.Host),
		slog.String("address", blocked.Addr.String()),
		slog.String("reason", blocked.Reason+" address"),
		slog.Int("refused_since_last_warning", held))
}

// jobTimeout leaves the request its full budget plus time to load and record.
func (c DeliveryConfig) jobTimeout() time.Duration {
	return c.RequestTimeout + 10*time.Second
}

func (w *deliveryWorker) Timeout(*river.Job[DeliveryArgs]) time.Duration {
	return w.config.jobTimeout()
}

func (w *deliveryWorker) NextRetry(job *river.Job[DeliveryArgs]) time.Time {
	if at, ok := w.nextRetry.LoadAndDelete(job.ID); ok {
		return at.(time.Time) //nolint:forcetypeassert // only times are stored
	}
	// No outcome of the receiver's: River rescued the delivery from a daemon that
	// died mid-attempt (it calls this without Work), or Work failed on the
	// database. Nobody refused it, so it goes again soon rather than after the
	// schedule's next wait (5 min for a second attempt by default), which would
	// also hold an ordered line that long.
	return w.now().Add(time.Duration(float64(unrecordedRetryDelay) * (0.8 + 0.4*w.random())))
}

// unrecordedRetryDelay is the wait before retrying a delivery whose attempt
// ended with no answer recorded (see NextRetry).
const unrecordedRetryDelay = time.Second

func (w *deliveryWorker) Work(ctx context.Context, job *river.Job[DeliveryArgs]) error {
	target, err := w.targets.load(ctx, outbox.DeliveryKey{EventID: job.Args.EventID, SubscriptionID: job.Args.SubscriptionID})
	switch {
	case errors.Is(err, outbox.ErrNotFound):
		return w.cancel(fmt.Errorf("subscription %s no longer exists", job.Args.SubscriptionID))
	case err != nil:
		return err
	case target.Event == nil:
		w.orderedFinish(ctx, job)
		return w.cancel(fmt.Errorf("event %s no longer exists", job.Args.EventID))
	case !target.Enabled && ordered(job):
		// An ordered line pauses while its subscription is disabled, and enabling
		// it resumes the line where it stopped.
		return w.deferRun("disabled", orderedDisabledRecheck)
	case !target.Enabled:
		return w.cancel(fmt.Errorf("subscription %s is disabled", job.Args.SubscriptionID))
	case len(target.Secrets) == 0:
		return w.retryLater(ctx, job, target, 0, fmt.Errorf("subscription %s has no active signing secret", job.Args.SubscriptionID))
	}
	// Holds are checked from the cheapest to the scarcest, so a delivery held back
	// by a later one has not used up an earlier one's allowance: the circuit's
	// wait (no query), this daemon's in-flight slots, the subscription's leases
	// across daemons, its rate, and last the circuit's single probe, which shuts
	// the circuit to every other delivery for a whole attempt.
	if target.CircuitOpen && target.CircuitWait > 0 {
		return w.deferRun("circuit", target.CircuitWait+time.Duration(w.random()*float64(min(target.CircuitWait/10, 5*time.Second))))
	}
	// Each daemon keeps one subscription to its share of the workers; a
	// subscription's max_in_flight caps it across daemons, and lower here too.
	limit := w.config.MaxInFlightDefault
	if target.MaxInFlight > 0 {
		limit = min(limit, target.MaxInFlight)
	}
	wait := w.config.InFlightWait
	if w.inflight.oldest(target.SubscriptionID) > time.Second {
		wait = 0 // a slow endpoint: waiting would only hold another worker
	}
	release, ok := w.inflight.acquire(ctx, target.SubscriptionID, limit, wait)
	if !ok {
		return w.deferRun("in_flight", w.inflightWait(job, target))
	}
	defer release()
	if target.MaxInFlight > 0 {
		leased, err := w.store.DeliveryLeaseTake(ctx, target.SubscriptionID, job.ID, w.config.jobTimeout())
		if err != nil {
			return err
		}
		if !leased {
			return w.deferRun("in_flight", w.inflightWait(job, target))
		}
		defer func() {
			if err := w.store.DeliveryLeaseRelease(context.WithoutCancel(ctx), job.ID); err != nil {
				w.logger.WarnContext(ctx, "release delivery lease (it expires by itself)", slog.Int64("job_id", job.ID), slog.String("error", err.Error()))
			}
		}()
	}
	if target.RateLimit > 0 {
		allowed, wait, err := w.store.RateLimitTake(ctx, target.SubscriptionID)
		if err != nil {
			return err
		}
		if !allowed {
			return w.deferRun("rate_limit", max(wait, 10*time.Millisecond))
		}
	}
	probe := false // this attempt is the open circuit's probe
	if target.CircuitOpen {
		if probe, err = w.store.CircuitProbeTake(ctx, target.SubscriptionID, w.config.probeWindow()); err != nil {
			return err
		}
		if !probe {
			return w.deferRun("circuit", w.backoff(job, time.Second, 5*time.Second))
		}
	}

	body, err := outbox.WebhookBody(target.Event)
	if err != nil {
		return w.cancel(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.URL, bytes.NewReader(body))
	if err != nil {
		return w.cancel(fmt.Errorf("subscription %s url: %w", target.SubscriptionID, err))
	}
	for name, value := range target.Headers {
		req.Header.Set(name, value)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", w.config.UserAgent)
	start := w.now()
	signing.SetHeaders(req.Header, target.Event.ID, start, body, target.Secrets...)

	attempt := outbox.Attempt{Attempt: job.Attempt, At: start}
	resp, err := w.client.Do(req)
	if err != nil {
		attempt.DurationMS = msSince(w.now, start)
		attempt.ErrorClass = classifyError(ctx, err)
		attempt.Error = describeRequestError(err, w.config.RequestTimeout)
		w.record(ctx, job, attempt)
		if attempt.ErrorClass == outbox.ErrorClassInterrupted {
			// The daemon is stopping: River puts the job back without counting the attempt.
			return err
		}
		if attempt.ErrorClass == outbox.ErrorClassBlocked {
			w.warnBlocked(ctx, target, err)
		}
		requestErr := &attemptError{url: target.URL, why: attempt.Error}
		if w.failed(ctx, target, probe, requestErr) && !ordered(job) {
			return w.cancel(fmt.Errorf("%w; subscription %s disabled after failing too long", requestErr, target.SubscriptionID))
		}
		return w.retryLater(ctx, job, target, 0, requestErr)
	}
	excerpt, readErr := readExcerpt(resp.Body, w.config.ResponseReadLimit)
	resp.Body.Close()
	attempt.DurationMS = msSince(w.now, start)
	attempt.StatusCode = resp.StatusCode
	attempt.Response = excerpt
	_ = readErr // the status line decides; a body cut short is still recorded

	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		w.record(ctx, job, attempt)
		if target.FailureStreak > 0 {
			w.succeeded(ctx, target)
		}
		if ordered(job) {
			if err := w.completeOrdered(ctx, job); err != nil {
				// Delivered, but not recorded: the attempt runs again (at least once).
				return fmt.Errorf("complete ordered delivery: %w", err)
			}
		}
		w.metrics.DeliveriesFinished.WithLabelValues(string(outbox.DeliveryDelivered)).Inc()
		return nil
	}

	attempt.ErrorClass = outbox.ErrorClassHTTPStatus
	w.record(ctx, job, attempt)
	statusErr := &attemptError{url: target.URL, why: fmt.Sprintf("receiver answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))}
	if resp.StatusCode == http.StatusGone {
		reason := "receiver answered 410 Gone"
		disabled, err := w.store.SubscriptionAutoDisable(ctx, target.SubscriptionID, reason)
		if err != nil {
			return w.retryLater(ctx, job, target, 0, fmt.Errorf("%w; disabling the subscription failed: %w", statusErr, err))
		}
		if disabled {
			w.metrics.SubscriptionsDisabled.WithLabelValues("gone").Inc()
			w.metrics.OperationalEvents.WithLabelValues(outbox.EventSubscriptionDisabled).Inc()
			w.logger.WarnContext(ctx, "subscription disabled",
				slog.String("subscription_id", target.SubscriptionID), slog.String("reason", reason))
		}
		if ordered(job) {
			return w.retryLater(ctx, job, target, 0, statusErr) // the line waits for the subscription to be enabled
		}
		return w.cancel(fmt.Errorf("%w; subscription %s disabled", statusErr, target.SubscriptionID))
	}
	if w.failed(ctx, target, probe, statusErr) && !ordered(job) {
		return w.cancel(fmt.Errorf("%w; subscription %s disabled after failing too long", statusErr, target.SubscriptionID))
	}
	return w.retryLater(ctx, job, target, parseRetryAfter(resp.Header.Get("Retry-After"), w.now()), statusErr)
}

// cancel ends a delivery that no attempt can complete.
func (w *deliveryWorker) cancel(err error) error {
	w.metrics.DeliveriesFinished.WithLabelValues(string(outbox.DeliveryCancelled)).Inc()
	return river.JobCancel(err)
}

// retryLater schedules the next attempt by the subscription's schedule, or lets
// River discard the job if this was the last one, telling operators
// (outboxd.delivery.exhausted) and, on an ordered line that skips dead
// deliveries, letting the next one go.
func (w *deliveryWorker) retryLater(ctx context.Context, job *river.Job[DeliveryArgs], target *outbox.DeliveryTarget, retryAfter time.Duration, err error) error {
	if job.Attempt >= job.MaxAttempts {
		w.metrics.DeliveriesFinished.WithLabelValues(string(outbox.DeliveryDead)).Inc()
		w.exhausted(ctx, job, target, err)
		return err
	}
	schedule := target.RetrySchedule
	if schedule == nil {
		schedule = w.config.RetrySchedule
	}
	delay := retryDelay(schedule, job.Attempt, w.random(), retryAfter, w.config.RetryAfterMax)
	w.nextRetry.Store(job.ID, w.now().Add(delay))
	return err
}

// record appends the attempt to the job's metadata ("attempts"), which River
// persists with the attempt's outcome, and counts it.
func (w *deliveryWorker) record(ctx context.Context, job *river.Job[DeliveryArgs], attempt outbox.Attempt) {
	outcome, class := "failure", attempt.ErrorClass
	switch {
	case attempt.StatusCode >= 200 && attempt.StatusCode < 300:
		outcome, class = "success", "2xx"
	case attempt.StatusCode > 0:
		class = strconv.Itoa(attempt.StatusCode/100) + "xx"
	}
	w.metrics.Attempts.WithLabelValues(outcome, class).Inc()
	w.metrics.AttemptDuration.WithLabelValues(outcome).Observe(attempt.DurationMS / 1000)

	var previous struct {
		Attempts []json.RawMessage `json:"attempts"`
	}
	if len(job.Metadata) > 0 {
		_ = json.Unmarshal(job.Metadata, &previous) // a malformed history is replaced, not fatal
	}
	entry, err := json.Marshal(attempt)
	if err != nil {
		return
	}
	if err := river.MetadataSet(ctx, "attempts", append(previous.Attempts, entry)); err != nil {
		w.logger.WarnContext(ctx, "record attempt", slog.Int64("job_id", job.ID), slog.String("error", err.Error()))
	}
}

func msSince(now func() time.Time, start time.Time) float64 {
	return float64(now().Sub(start).Microseconds()) / 1000
}

// readExcerpt reads at most limit bytes of body and returns the first
// ResponseExcerptBytes of it as valid UTF-8.
func readExcerpt(body io.Reader, limit int64) (string, error) {
	data, err := io.ReadAll(io.LimitReader(body, limit))
	if len(data) > outbox.ResponseExcerptBytes {
		data = data[:outbox.ResponseExcerptBytes]
	}
	for len(data) > 0 && !utf8.Valid(data) {
		data = data[:len(data)-1]
	}
	return string(data), err
}

// attemptError is why an attempt failed, as the delivery records it: "POST
// <url>: <why>".
type attemptError struct {
	url string
	why string
}

func (e *attemptError) Error() string { return "POST " + e.url + ": " + e.why }

// attemptWhy is what to log of an attempt's error: its why without the URL,
// whose query may carry a token.
func attemptWhy(err error) string {
	var attempt *attemptError
	if errors.As(err, &attempt) {
		return attempt.why
	}
	return err.Error()
}

// describeRequestError says why a request got no response, briefly: without
// the method and URL that *url.Error repeats (callers that need them say them
// once), and a timeout of the whole request in plain words.
func describeRequestError(err error, requestTimeout time.Duration) string {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err
	}
	var opErr *net.OpError
	if errors.Is(err, context.DeadlineExceeded) && !(errors.As(err, &opErr) && opErr.Op == "dial") {
		return fmt.Sprintf("no complete response within %s (the request timeout)", requestTimeout)
	}
	return err.Error()
}

// classifyError names why a request got no response.
func classifyError(ctx context.Context, err error) string {
	var (
		blocked *netguard.BlockedError
		dnsErr  *net.DNSError
		certErr *tls.CertificateVerificationError
		x509Err x509.UnknownAuthorityError
		hostErr x509.HostnameError
		recErr  tls.RecordHeaderError
		netErr  net.Error
	)
	switch {
	case errors.As(err, &blocked):
		return outbox.ErrorClassBlocked
	case errors.Is(ctx.Err(), context.Canceled):
		return outbox.ErrorClassInterrupted
	case errors.As(err, &dnsErr):
		return outbox.ErrorClassDNS
	case errors.As(err, &certErr), errors.As(err, &x509Err), errors.As(err, &hostErr), errors.As(err, &recErr):
		return outbox.ErrorClassTLS
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return outbox.ErrorClassTimeout
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return outbox.ErrorClassConnection
	}
	return outbox.ErrorClassRequest
}
