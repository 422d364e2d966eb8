package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/outboxd/outboxd/outbox"
)

// Defaults for RelayConfig.
const (
	RelayBatchSizeDefault          = 500
	RelayPollIntervalDefault       = 250 * time.Millisecond
	RelayActivePollIntervalDefault = 10 * time.Millisecond
	RelayWokenPollIntervalDefault  = 5 * time.Millisecond
	RelayActiveForDefault          = 2 * time.Second
	RelayIdleAfterDefault          = time.Minute
)

// RelayConfig tunes the relay. Zero values take the defaults.
type RelayConfig struct {
	// BatchSize is the most events one claim takes. Defaults to 500.
	BatchSize int

	// PollInterval is how long a quiet relay waits before looking again, unless
	// woken sooner by a notification on outbox.WakeChannel or Wake. Defaults to
	// 250 ms.
	PollInterval time.Duration

	// IdlePollInterval replaces PollInterval once the relay has found no events
	// for IdleAfter (and from start until it first finds some). Each look wakes
	// the daemon and costs a round trip: at 250 ms they were a third of an idle
	// daemon's CPU. Defaults to four times PollInterval (1 s at its default); at
	// most PollInterval turns it off.
	IdlePollInterval time.Duration

	// IdleAfter is how long without events makes the relay idle. Defaults to
	// one minute.
	IdleAfter time.Duration

	// ActivePollInterval is the wait after a claim that found events but did not
	// fill a batch: events are flowing, so look again soon. After a full batch the
	// relay claims again at once. Defaults to 10 ms.
	ActivePollInterval time.Duration

	// ActiveFor is how long after its last claim that found events the relay
	// keeps looking every ActivePollInterval, before it slows to PollInterval.
	// Light traffic (an event every tens of milliseconds) then waits
	// ActivePollInterval at most, while an idle relay looks only every
	// PollInterval. Defaults to 2 s; -1 slows down at once.
	ActiveFor time.Duration

	// WokenPollInterval is how soon after its last claim began a busy relay claims
	// again when woken (a producer's outbox.wake() or Redis PUBLISH says events
	// were committed): sooner than ActivePollInterval, yet seldom enough that
	// claims stay batches. An idle relay claims at once when woken. Defaults to
	// 5 ms; at least ActivePollInterval turns it off.
	WokenPollInterval time.Duration
}

// Relay moves committed events from outbox.events into River: it claims a batch
// with FOR UPDATE SKIP LOCKED and, in the same transaction, marks it dispatched and
// creates its deliveries (one River job per event and matching subscription).
// Several relays (one per daemon) share the work.
//
// It wakes on its poll interval, on a notification (outbox.wake()), on Wake (a
// Redis message), and again at once after a full batch.
type Relay struct {
	config  RelayConfig
	logger  *slog.Logger
	pool    *pgxpool.Pool
	store   *outbox.Store
	client  *river.Client[pgx.Tx]
	metrics *Metrics
	health  *dbHealth
	// retrySchedule is the daemon's, for deliveries the relay fans out itself.
	retrySchedule outbox.RetrySchedule

	// pollOnly leaves out the LISTEN connection (Config.PollOnly).
	pollOnly bool

	wake    chan struct{}
	mu      sync.Mutex
	cancel  context.CancelFunc
	stopped chan struct{}
	// lastLoop is when the loop last finished a claim (or found nothing), for readiness.
	lastLoop time.Time

	testSignals relayTestSignals
}

type relayTestSignals struct {
	claimed   testSignal[int]           // after each claim transaction commits, with the number claimed
	looked    testSignal[bool]          // after a quiet relay's one-statement look, with whether events wait
	waiting   testSignal[time.Duration] // after each pass, with how long the relay waits before the next
	listening testSignal[struct{}]
}

func newRelay(config RelayConfig, logger *slog.Logger, pool *pgxpool.Pool, store *outbox.Store, client *river.Client[pgx.Tx], retrySchedule outbox.RetrySchedule, metrics *Metrics, health *dbHealth) *Relay {
	config.BatchSize = cmp.Or(config.BatchSize, RelayBatchSizeDefault)
	config.PollInterval = cmp.Or(config.PollInterval, RelayPollIntervalDefault)
	config.ActivePollInterval = cmp.Or(config.ActivePollInterval, RelayActivePollIntervalDefault)
	config.WokenPollInterval = cmp.Or(config.WokenPollInterval, RelayWokenPollIntervalDefault)
	config.ActiveFor = cmp.Or(config.ActiveFor, RelayActiveForDefault)
	config.IdlePollInterval = max(cmp.Or(config.IdlePollInterval, 4*config.PollInterval), config.PollInterval)
	config.IdleAfter = cmp.Or(config.IdleAfter, RelayIdleAfterDefault)
	return &Relay{
		config:  config,
		logger:  logger.With(slog.String("component", "relay")),
		pool:    pool,
		store:   store,
		client:  client,
		metrics: metrics,
		health:  health,
		wake:    make(chan struct{}, 1),

		retrySchedule: retrySchedule,
	}
}

// Wake makes the relay look for events now.
func (r *Relay) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Start runs the relay in the background until Stop.
func (r *Relay) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel != nil {
		return errors.New("relay already started")
	}
	ctx, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	r.stopped = make(chan struct{})
	r.lastLoop = time.Now()
	if !r.pollOnly {
		go r.listen(ctx)
	}
	go r.loop(ctx)
	return nil
}

// Stop stops claiming and waits for a claim in progress to commit or roll back.
// It is safe to call before Start and more than once.
func (r *Relay) Stop() {
	r.mu.Lock()
	cancel, stopped := r.cancel, r.stopped
	r.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-stopped
}

// Healthy reports whether the loop has run recently.
func (r *Relay) Healthy() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel == nil {
		return errors.New("relay not running")
	}
	if since := time.Since(r.lastLoop); since > r.config.IdlePollInterval+30*time.Second {
		return fmt.Errorf("relay has not completed a claim for %s", since.Round(time.Second))
	}
	return nil
}

func (r *Relay) loop(ctx context.Context) {
	defer close(r.stopped)
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C

	failures := 0
	var lastFound time.Time
	// quiet: the last look found nothing, so the next one first asks whether
	// anything waits, in one statement, before it opens a claim transaction (four
	// round trips). A wake-up skips the question.
	quiet, woken := false, false
	for {
		claimStart := time.Now()
		var claimed int
		var err error
		if quiet && !woken {
			var pending bool
			if pending, err = r.store.EventsPending(ctx); err == nil {
				r.testSignals.looked.signal(pending)
				if pending {
					claimed, err = r.claim(ctx)
				} else {
					r.health.succeeded(ctx, claimStart)
				}
			}
		} else {
			claimed, err = r.claim(ctx)
		}
		if claimed > 0 {
			lastFound = claimStart
		}
		var wait time.Duration
		busy := false
		quiet, woken = false, false
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			failures++
			wait = min(time.Duration(failures)*time.Second, 10*time.Second)
			if !r.health.failed(ctx, err) { // an outage is reported once, not per claim
				r.logger.ErrorContext(ctx, "claim events", slog.String("error", err.Error()), slog.Duration("retry_in", wait))
			}
		case claimed >= r.config.BatchSize:
			failures = 0
			continue
		case claimed > 0:
			failures = 0
			wait, busy = r.config.ActivePollInterval, true
		case claimStart.Sub(lastFound) < r.config.ActiveFor:
			failures = 0 // nothing this time, but events came moments ago
			wait, quiet = r.config.ActivePollInterval, true
		case claimStart.Sub(lastFound) < r.config.IdleAfter:
			failures = 0
			wait, quiet = r.config.PollInterval, true
		default:
			failures = 0
			wait, quiet = r.config.IdlePollInterval, true
		}
		r.mu.Lock()
		r.lastLoop = time.Now()
		r.mu.Unlock()
		r.testSignals.waiting.signal(wait)

		timer.Reset(wait)
		if busy {
			if r.busyWait(ctx, timer, claimStart) != nil {
				return
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
			woken = true
			if !timer.Stop() {
				<-timer.C
			}
		case <-timer.C:
		}
	}
}

// busyWait waits, after a claim that found events, for the next claim: until
// ActivePollInterval has passed (timer), or until woken once WokenPollInterval
// has passed since the claim began. A producer may send a wake-up per commit;
// those that come sooner only bring the claim forward to that point, so claims
// stay batches.
func (r *Relay) busyWait(ctx context.Context, timer *time.Timer, claimStart time.Time) error {
	if r.config.WokenPollInterval >= r.config.ActivePollInterval {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
		select { // forget the wake-ups the claim served
		case <-r.wake:
		default:
		}
		return nil
	}
	earliest := time.NewTimer(time.Until(claimStart.Add(r.config.WokenPollInterval)))
	defer earliest.Stop()
	woken := false
	for waiting := true; waiting; {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			return nil
		case <-r.wake:
			woken = true
		case <-earliest.C:
			waiting = false
		}
	}
	if !woken {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			return nil
		case <-r.wake:
		}
	}
	if !timer.Stop() {
		<-timer.C
	}
	return nil
}

// claim runs one claim transaction and returns how many events it dispatched.
func (r *Relay) claim(ctx context.Context) (int, error) {
	began := time.Now()
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit

	claim, err := r.store.EventClaimFanoutTx(ctx, tx, r.config.BatchSize)
	if err != nil {
		return 0, err
	}
	if len(claim.OrderedAgents) > 0 {
		if err := r.store.OrderedLockTx(ctx, tx, claim.OrderedAgents); err != nil {
			return 0, err
		}
	}
	if err := createDeliveries(ctx, tx, r.client, r.store, r.retrySchedule, claim.Deliveries, claim.OrderedAgents); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("commit claim: %w", err)
	}
	if n := len(claim.Seqs); n > 0 {
		r.metrics.RelayBatches.Inc()
		r.metrics.EventsDispatched.Add(float64(n))
		r.metrics.EventsFannedOut.Add(float64(n))
		r.metrics.DeliveriesCreated.Add(float64(len(claim.Deliveries)))
	}
	r.health.succeeded(ctx, began)
	r.testSignals.claimed.signal(len(claim.Seqs))
	return len(claim.Seqs), nil
}

// listen holds a connection LISTENing on the wake channel and wakes the loop on
// each notification, reconnecting after failures. Without it the relay still
// polls, so a broken listener costs latency, never events.
func (r *Relay) listen(ctx context.Context) {
	channel := pgx.Identifier{outbox.WakeChannel(r.store.Schema())}.Sanitize()
	failures := 0
	for ctx.Err() == nil {
		err := r.listenOnce(ctx, channel)
		if ctx.Err() != nil {
			return
		}
		failures++
		wait := min(time.Duration(failures)*time.Second, 30*time.Second)
		if !r.health.failed(ctx, err) {
			r.logger.WarnContext(ctx, "wake listener lost; polling meanwhile", slog.String("error", err.Error()), slog.Duration("retry_in", wait))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (r *Relay) listenOnce(ctx context.Context, channel string) error {
	pooled, err := r.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire connection: %w", err)
	}
	// Taken out of the pool for good: its session (LISTEN) must not be shared.
	conn := pooled.Hijack()
	defer conn.Close(context.WithoutCancel(ctx)) //nolint:errcheck // closing anyway
	if _, err := conn.Exec(ctx, "LISTEN "+channel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	r.testSignals.listening.signal(struct{}{})
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return fmt.Errorf("wait for notification: %w", err)
		}
		r.Wake()
	}
}
