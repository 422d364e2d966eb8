package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/netguard"
)

// Defaults for Config.
const (
	FanoutWorkersDefault     = 4
	DeliveryWorkersDefault   = 100
	FetchCooldownDefault     = 5 * time.Millisecond
	FetchPollIntervalDefault = time.Second
	// FetchPollIntervalPollOnlyDefault is FetchPollInterval's default when
	// PollOnly: polls are then how every job is found.
	FetchPollIntervalPollOnlyDefault = 200 * time.Millisecond

	// fanoutFetchPollInterval is the least poll interval of the fan-out queue.
	fanoutFetchPollInterval   = 5 * time.Second
	CompletedRetentionDefault = 24 * time.Hour
	DeadRetentionDefault      = 7 * 24 * time.Hour
	ShutdownTimeoutDefault    = 30 * time.Second
	rescueMarginDefault       = time.Minute
)

// Config configures a Daemon. Store is required; zero values take the defaults.
type Config struct {
	// Store is the outboxd store to work on; its schema is the daemon's.
	Store *outbox.Store

	// Logger receives the daemon's logs. Defaults to discarding them.
	Logger *slog.Logger

	// Metrics receives measurements. Defaults to unregistered instruments.
	Metrics *Metrics

	// Guard decides which addresses deliveries may reach. Defaults to a zero
	// netguard.Guard: no loopback, private, link-local or metadata targets.
	Guard *netguard.Guard

	Relay    RelayConfig
	Delivery DeliveryConfig

	// FanoutWorkers is how many fan-out jobs run at once per daemon. Defaults to 4.
	FanoutWorkers int

	// DeliveryWorkers is how many deliveries are in flight at once per daemon.
	// Defaults to 100.
	DeliveryWorkers int

	// FetchCooldown is the shortest pause between two fetches of one queue. River's
	// default (100 ms) would cap a queue at DeliveryWorkers per 100 ms however fast
	// receivers answer. Defaults to 5 ms.
	FetchCooldown time.Duration

	// FetchPollInterval is how often an idle queue looks for jobs it was not
	// notified of. Every claim and every retry that makes deliveries due
	// notifies, so this is a backstop. Defaults to 1 s; 200 ms when PollOnly.
	FetchPollInterval time.Duration

	// RescueStuckJobsAfter is when a job still marked running is presumed lost with
	// its daemon (killed, or cut off) and retried. It must exceed a delivery's
	// timeout (RequestTimeout + 10 s), or a slow delivery could be sent twice. (A
	// fan-out job may be rescued while it still runs: the second run finds its
	// events already fanned out and creates nothing.) Defaults to the delivery
	// timeout plus one minute (100 s with the default 30 s request timeout).
	RescueStuckJobsAfter time.Duration

	// CompletedRetention keeps delivered deliveries (and completed fan-out jobs)
	// this long. Defaults to 24 h.
	CompletedRetention time.Duration

	// DeadRetention keeps dead and cancelled deliveries this long, so they can be
	// inspected and retried. Defaults to 7 days.
	DeadRetention time.Duration

	// EventRetention keeps events this long, and then only until all their
	// deliveries are final. Defaults to 7 days.
	EventRetention time.Duration

	// RetentionInterval is how often the leader runs retention: drops the
	// partitions of outbox.events past EventRetention and makes new ones ahead.
	// Defaults to 10 minutes.
	RetentionInterval time.Duration

	// HeartbeatInterval is how often the daemon records in outbox.daemons that it
	// is alive, and looks for daemons that stopped doing so. Defaults to 2 s.
	HeartbeatInterval time.Duration

	// TakeOverAfter is how long a daemon's heartbeat may be missing before the
	// others presume it dead and put the jobs it was running back in the queue
	// (a delivery it had in flight may then be sent twice, as after any crash).
	// At least three heartbeats. Defaults to 10 s.
	TakeOverAfter time.Duration

	// PollOnly keeps the daemon from LISTENing (River's notifier and the relay's
	// wake-ups): it polls instead. Required behind a pooler in transaction mode,
	// which does not keep a session's LISTEN. outbox.wake() then wakes nothing.
	PollOnly bool

	// Version names the daemon's build in outbox.daemons.
	Version string

	// Redis, if set, wakes the relay when a producer PUBLISHes to the wake channel
	// (outbox.WakeChannel) after committing. Optional: without it, or while it is
	// down, the relay polls.
	Redis *redis.Client

	// OutageReminder is how often a database outage is reported again while it
	// lasts. It is reported once when it starts and once when it ends, with how
	// long it lasted; the errors it causes meanwhile are counted, not logged.
	// Defaults to 1 minute.
	OutageReminder time.Duration

	// orderedSweepInterval replaces the sweep's interval in tests.
	orderedSweepInterval time.Duration
}

// Daemon is one outboxd worker process's machinery: the relay and River's fan-out
// and delivery queues.
type Daemon struct {
	id        string
	heartbeat *heartbeat
	redis     *redisWaker
	config    Config
	logger    *slog.Logger
	pool      *pgxpool.Pool
	client    *river.Client[pgx.Tx]
	relay     *Relay
	delivery  *deliveryWorker
	health    *dbHealth

	// sweepGate and pruneGate run the ordered sweep and retention only when
	// there are ordered lines waiting, and events old enough to prune or
	// partitions to make.
	sweepGate *periodicGate
	pruneGate *periodicGate
}

// NewDaemon builds a daemon on pool. Call Start to run it.
func NewDaemon(pool *pgxpool.Pool, config *Config) (*Daemon, error) {
	if config == nil || config.Store == nil {
		return nil, errors.New("jobs: Config.Store is required")
	}
	c := *config
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics(nil)
	}
	if c.Guard == nil {
		c.Guard = &netguard.Guard{}
	}
	c.Delivery = c.Delivery.withDefaults()
	if c.FanoutWorkers <= 0 {
		c.FanoutWorkers = FanoutWorkersDefault
	}
	if c.DeliveryWorkers <= 0 {
		c.DeliveryWorkers = DeliveryWorkersDefault
	}
	if c.FetchCooldown <= 0 {
		c.FetchCooldown = FetchCooldownDefault
	}
	if c.FetchPollInterval <= 0 {
		c.FetchPollInterval = FetchPollIntervalDefault
		if c.PollOnly {
			c.FetchPollInterval = FetchPollIntervalPollOnlyDefault
		}
	}
	if c.CompletedRetention <= 0 {
		c.CompletedRetention = CompletedRetentionDefault
	}
	if c.DeadRetention <= 0 {
		c.DeadRetention = DeadRetentionDefault
	}
	if c.EventRetention <= 0 {
		c.EventRetention = EventRetentionDefault
	}
	if c.RetentionInterval <= 0 {
		c.RetentionInterval = RetentionIntervalDefault
	}
	if c.orderedSweepInterval <= 0 {
		c.orderedSweepInterval = orderedSweepInterval
	}
	deliveryTimeout := c.Delivery.jobTimeout()
	if c.RescueStuckJobsAfter <= 0 {
		c.RescueStuckJobsAfter = deliveryTimeout + rescueMarginDefault
	}
	if c.RescueStuckJobsAfter <= deliveryTimeout {
		return nil, fmt.Errorf("jobs: RescueStuckJobsAfter (%s) must exceed a delivery's timeout (%s), or a slow delivery could be sent twice", c.RescueStuckJobsAfter, deliveryTimeout)
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = HeartbeatIntervalDefault
	}
	if c.TakeOverAfter <= 0 {
		c.TakeOverAfter = TakeOverAfterDefault
	}
	if c.TakeOverAfter < 3*c.HeartbeatInterval {
		return nil, fmt.Errorf("jobs: TakeOverAfter (%s) must be at least three heartbeats (%s)", c.TakeOverAfter, 3*c.HeartbeatInterval)
	}
	if c.FetchPollInterval < c.FetchCooldown {
		return nil, fmt.Errorf("jobs: FetchPollInterval (%s) must be at least FetchCooldown (%s)", c.FetchPollInterval, c.FetchCooldown)
	}
	if err := c.Delivery.RetrySchedule.Validate(); err != nil {
		return nil, fmt.Errorf("jobs: retry schedule: %w", err)
	}

	d := &Daemon{id: newClientID(), config: c, logger: c.Logger, pool: pool}
	d.health = newDBHealth(c.Logger, pool.Ping, c.OutageReminder)
	// The daemon's parts log through the outage reports; its own lines (start,
	// stop) and the reports themselves do not.
	c.Logger = slog.New(&outageLogHandler{Handler: c.Logger.Handler(), health: d.health})
	d.sweepGate = newPeriodicGate(c.Store.OrderedLinesWaiting)
	d.pruneGate = newPeriodicGate(func(ctx context.Context) (bool, error) {
		now := time.Now()
		return c.Store.RetentionDue(ctx, now.Add(-c.EventRetention), now.Add(retentionDueAhead))
	})
	d.delivery = newDeliveryWorker(c.Delivery, c.Logger, pool, c.Store, c.Guard, c.Metrics, c.DeliveryWorkers)

	workers := river.NewWorkers()
	river.AddWorker(workers, &fanoutWorker{pool: pool, store: c.Store, retrySchedule: c.Delivery.RetrySchedule, metrics: c.Metrics})
	river.AddWorker(workers, d.delivery)
	river.AddWorker(workers, &recoveryWorker{pool: pool, store: c.Store, retrySchedule: c.Delivery.RetrySchedule, logger: c.Logger.With(slog.String("component", "recovery"))})
	river.AddWorker(workers, &lettaCallbackWorker{
		pool: pool, store: c.Store, guard: c.Guard, client: d.delivery.client, config: c.Delivery,
		logger: c.Logger.With(slog.String("component", "letta_callback")),
	})
	river.AddWorker(workers, &lettaAgentWebhookWorker{pool: pool, store: c.Store})
	river.AddWorker(workers, &orderedSweepWorker{store: c.Store, logger: c.Logger.With(slog.String("component", "ordered"))})
	river.AddWorker(workers, &pruneWorker{store: c.Store, retention: c.EventRetention, interval: c.RetentionInterval, logger: c.Logger.With(slog.String("component", "retention")), now: time.Now, retryWait: time.Second})

	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		ID:     d.id,
		Schema: c.Store.Schema(),
		Logger: slog.New(d.QuietDuringOutage(&minLevelHandler{Handler: d.logger.Handler(), min: slog.LevelWarn})),
		// River's GIN indexes on args and metadata are gone (migration 14): its
		// reindexer would warn daily that they are missing.
		ReindexerIndexNames: slices.DeleteFunc(river.ReindexerIndexNamesDefault(), func(name string) bool {
			return name == "river_job_args_index" || name == "river_job_metadata_index"
		}),
		Queues: map[string]river.QueueConfig{
			// Its jobs (recoveries, pruning, sweeps, an older outboxd's fan-outs) are
			// inserted with River's notification or on a schedule, and none is urgent:
			// each poll wakes an idle daemon and costs a round trip.
			QueueFanout:   {MaxWorkers: c.FanoutWorkers, FetchPollInterval: max(c.FetchPollInterval, fanoutFetchPollInterval)},
			QueueDelivery: {MaxWorkers: c.DeliveryWorkers},
		},
		Workers: workers,
		// Each runs only when it has something to look at (periodicGate).
		PeriodicJobs: []*river.PeriodicJob{
			river.NewPeriodicJob(river.PeriodicInterval(c.RetentionInterval), d.pruneGate.constructor(PruneArgs{}),
				&river.PeriodicJobOpts{ID: "outboxd.prune_events", RunOnStart: true}),
			river.NewPeriodicJob(river.PeriodicInterval(c.orderedSweepInterval), d.sweepGate.constructor(OrderedSweepArgs{}),
				&river.PeriodicJobOpts{ID: "outboxd.ordered_sweep"}),
		},
		PollOnly:                    c.PollOnly,
		FetchCooldown:               c.FetchCooldown,
		FetchPollInterval:           c.FetchPollInterval,
		JobTimeout:                  deliveryTimeout, // the fan-out worker sets its own
		RescueStuckJobsAfter:        c.RescueStuckJobsAfter,
		CompletedJobRetentionPeriod: c.CompletedRetention,
		CancelledJobRetentionPeriod: c.DeadRetention,
		DiscardedJobRetentionPeriod: c.DeadRetention,
	})
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	d.client = client
	hostname, _ := os.Hostname()
	d.heartbeat = &heartbeat{
		store: c.Store, logger: c.Logger.With(slog.String("component", "heartbeat")), metrics: c.Metrics,
		self:     &outbox.Daemon{ID: d.id, Hostname: hostname, PID: os.Getpid(), Version: c.Version},
		interval: c.HeartbeatInterval, takeOverAfter: c.TakeOverAfter,
	}
	d.relay = newRelay(c.Relay, c.Logger, pool, c.Store, client, c.Delivery.RetrySchedule, c.Metrics, d.health)
	d.relay.pollOnly = c.PollOnly
	d.health.recovered = d.relay.Wake // it may be waiting out a backoff
	if c.Redis != nil {
		// Not through the outage reports: Redis's connection errors are not Postgres's.
		d.redis = newRedisWaker(c.Redis, c.Store.Schema(), d.relay, d.logger)
	}
	return d, nil
}

// Client is the daemon's River client (for the River UI and job operations).
func (d *Daemon) Client() *river.Client[pgx.Tx] { return d.client }

// ID is the daemon's River client id, which River records in the jobs it runs
// and outbox.daemons lists.
func (d *Daemon) ID() string { return d.id }

// Relay is the daemon's relay.
func (d *Daemon) Relay() *Relay { return d.relay }

// Start starts the River client, then the relay. Only Stop stops them: cancelling
// ctx does not (River would take a cancelled start context as a hard stop and
// interrupt in-flight deliveries).
func (d *Daemon) Start(ctx context.Context) error {
	if err := d.heartbeat.start(ctx); err != nil {
		return err
	}
	d.health.start(ctx)
	d.sweepGate.start(ctx)
	d.pruneGate.start(ctx)
	if err := d.client.Start(context.WithoutCancel(ctx)); err != nil {
		d.sweepGate.stop()
		d.pruneGate.stop()
		d.health.stop()
		d.heartbeat.stop(ctx)
		return fmt.Errorf("start river: %w", err)
	}
	if err := d.relay.Start(ctx); err != nil {
		return err
	}
	if d.redis != nil {
		d.redis.start(ctx)
	}
	d.logger.InfoContext(ctx, "daemon started",
		slog.String("daemon_id", d.id),
		slog.String("schema", d.config.Store.Schema()),
		slog.Int("delivery_workers", d.config.DeliveryWorkers),
		slog.Int("fanout_workers", d.config.FanoutWorkers))
	d.warnIfNoAutovacuum(ctx)
	return nil
}

// Stop shuts down without losing work: the relay stops claiming (a claim in
// progress commits or rolls back), River stops fetching and waits for running jobs
// until ctx is done, then cancels the rest, which River returns to the queue
// without counting the attempt.
func (d *Daemon) Stop(ctx context.Context) error {
	if d.redis != nil {
		d.redis.stop()
	}
	d.relay.Stop()
	// The heartbeat goes on until River has stopped: until then the daemon's
	// running jobs are its own.
	defer d.heartbeat.stop(context.WithoutCancel(ctx))
	defer d.health.stop()
	defer d.sweepGate.stop()
	defer d.pruneGate.stop()
	err := d.client.Stop(ctx)
	if err == nil {
		d.logger.InfoContext(ctx, "daemon stopped")
		return nil
	}
	d.logger.WarnContext(ctx, "in-flight jobs did not finish in time; cancelling them", slog.String("error", err.Error()))
	hardCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := d.client.StopAndCancel(hardCtx); err != nil {
		return fmt.Errorf("stop river: %w", err)
	}
	return nil
}

// Ready reports whether the daemon can do its work: the database answers and the
// relay is running.
func (d *Daemon) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := d.pool.Ping(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	if err := d.relay.Healthy(); err != nil {
		return err
	}
	select {
	case <-d.client.Stopped():
		return errors.New("river client stopped")
	default:
	}
	return nil
}

// Degraded lists what works less well than it could without stopping the daemon
// from doing its job (Redis wake-ups down: the relay polls). Empty when all is well.
func (d *Daemon) Degraded(context.Context) []string {
	if d.redis != nil {
		if reason := d.redis.degraded(); reason != "" {
			return []string{reason}
		}
	}
	return nil
}

// QuietDuringOutage wraps the log handler of a part that cannot tell a database
// outage from another failure (the River UI, the HTTP API): while the daemon
// finds the database down, their warnings and errors are held back and counted
// in the daemon's outage reports (Config.OutageReminder), and one that says a
// connection failed starts an outage.
func (d *Daemon) QuietDuringOutage(h slog.Handler) slog.Handler {
	return &outageLogHandler{Handler: h, health: d.health, everything: true}
}

// WarningsOnly wraps a log handler to pass only warnings and errors, for chatty
// components (River, the River UI).
func WarningsOnly(h slog.Handler) slog.Handler {
	return &minLevelHandler{Handler: h, min: slog.LevelWarn}
}

// minLevelHandler drops records below min: River reports every failed attempt at
// info, which outboxd already records and counts itself.
type minLevelHandler struct {
	slog.Handler
	min slog.Level
}

func (h *minLevelHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return level >= h.min && h.Handler.Enabled(ctx, level)
}

func (h *minLevelHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &minLevelHandler{Handler: h.Handler.WithAttrs(attrs), min: h.min}
}

func (h *minLevelHandler) WithGroup(name string) slog.Handler {
	return &minLevelHandler{Handler: h.Handler.WithGroup(name), min: h.min}
}
