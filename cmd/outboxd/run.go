package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"riverqueue.com/riverui"

	"github.com/outboxd/outboxd/jobs"
	"github.com/outboxd/outboxd/migrations"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/httpapi"
)

type runFlags struct {
	httpAddr            string
	pprofAddr           string
	httpReadTimeout     time.Duration
	httpIdleTimeout     time.Duration
	httpMaxConnections  int
	sessionLifetime     time.Duration
	publicURL           string
	allowPrivateTargets string
	apiTokenFile        string
	redisURL            string
	migrate             bool

	deliveryWorkers int
	fanoutWorkers   int
	pollInterval    time.Duration
	idlePoll        time.Duration
	batchSize       int
	fetchCooldown   time.Duration
	fetchPoll       time.Duration

	requestTimeout time.Duration
	connectTimeout time.Duration
	retrySchedule  string
	retryAfterMax  time.Duration

	maxInFlight      int
	circuitFailures  int
	circuitBackoff   time.Duration
	circuitBackoffMx time.Duration
	disableAfter     time.Duration

	rescueAfter        time.Duration
	takeOverAfter      time.Duration
	completedRetention time.Duration
	deadRetention      time.Duration
	eventRetention     time.Duration
	retentionInterval  time.Duration
	shutdownTimeout    time.Duration
}

func newRunCommand(a *app) *cobra.Command {
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the daemon: relay, workers, REST API, River UI, health and metrics",
		Long: `Run the daemon: the relay that claims committed events, River's fan-out and
delivery workers, and an HTTP server on --http-addr with the REST API (/v1, described
at /openapi.json), the River UI (/riverui/; browsers sign in at /login with an
admin token), /healthz, /readyz and /metrics.

Run as many as you like against one database; they share the work. SIGINT or
SIGTERM stops claiming, lets in-flight deliveries finish for --shutdown-timeout,
then hands the rest back to the queue; nothing is lost. A second signal exits at
once (still nothing is lost: unfinished work is retried by another daemon or the
next start).

Needs OUTBOXD_ENCRYPTION_KEY to read the subscriptions' signing secrets, and
OUTBOXD_API_TOKEN (or --api-token-file) for admin access to the API and River UI.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDaemon(cmd.Context(), a, f)
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&f.httpAddr, "http-addr", "127.0.0.1:8080", "address of the HTTP server: REST API (/v1), River UI (/riverui/, sign-in at /login), /healthz, /readyz and /metrics")
	flags.StringVar(&f.pprofAddr, "pprof-addr", "", "address of a separate HTTP server with Go's profiles (/debug/pprof/), e.g. 127.0.0.1:6060; off by default, and never put it where others can reach it")
	flags.DurationVar(&f.httpReadTimeout, "http-read-timeout", httpapi.ReadTimeoutDefault, "longest a client may take to send a request, body included; a slower one is answered 408 and disconnected (answers may take --request-timeout + 30s, for subscription tests)")
	flags.DurationVar(&f.httpIdleTimeout, "http-idle-timeout", httpapi.IdleTimeoutDefault, "close a keep-alive connection that sends no request for this long")
	flags.IntVar(&f.httpMaxConnections, "http-max-connections", httpapi.MaxConnectionsDefault, "most HTTP connections open at once; more wait to be accepted")
	flags.StringVar(&f.publicURL, "public-url", "", "where browsers reach this server (https://outboxd.example.com), for the portal links POST /v1/portal/sessions makes; default: each request's own host")
	flags.DurationVar(&f.sessionLifetime, "session-lifetime", httpapi.SessionLifetimeDefault, "how long a River UI sign-in (/login) lasts before the browser must sign in again")
	flags.StringVar(&f.allowPrivateTargets, "allow-private-targets", "", "CIDR prefixes that webhooks may reach although private, loopback or link-local, e.g. 127.0.0.0/8 (default none)")
	flags.StringVar(&f.redisURL, "redis-url", "", "optional Redis (redis://host:6379/0) whose wake channel, <schema>.wake, producers may PUBLISH to after committing for lower latency")
	flags.StringVar(&f.apiTokenFile, "api-token-file", "", "file of admin API tokens, one per line, besides OUTBOXD_API_TOKEN")
	flags.BoolVar(&f.migrate, "migrate", false, "apply pending migrations before starting")
	flags.IntVar(&f.deliveryWorkers, "delivery-workers", jobs.DeliveryWorkersDefault, "deliveries in flight at once")
	flags.IntVar(&f.fanoutWorkers, "fanout-workers", jobs.FanoutWorkersDefault, "fan-out jobs at once")
	flags.DurationVar(&f.pollInterval, "poll-interval", jobs.RelayPollIntervalDefault, "how often a quiet relay looks for new events (outbox.wake() wakes it sooner)")
	flags.DurationVar(&f.idlePoll, "idle-poll-interval", 0, "how often the relay looks once it has found no events for a minute (default 4 × --poll-interval, 1s; at most --poll-interval turns it off)")
	flags.IntVar(&f.batchSize, "batch-size", jobs.RelayBatchSizeDefault, "most events the relay claims at once")
	flags.DurationVar(&f.fetchCooldown, "fetch-cooldown", jobs.FetchCooldownDefault, "shortest pause between River fetches of a queue")
	flags.DurationVar(&f.fetchPoll, "fetch-poll-interval", 0, fmt.Sprintf("how often an idle River queue polls (default %s; %s with --pooler transaction)", jobs.FetchPollIntervalDefault, jobs.FetchPollIntervalPollOnlyDefault))
	flags.DurationVar(&f.requestTimeout, "request-timeout", jobs.RequestTimeoutDefault, "limit on one delivery attempt, from connect to the end of the response")
	flags.DurationVar(&f.connectTimeout, "connect-timeout", 5*time.Second, "limit on connecting to a receiver")
	flags.StringVar(&f.retrySchedule, "retry-schedule", jobs.DefaultRetrySchedule.String(), "default waits between attempts, for subscriptions without their own")
	flags.DurationVar(&f.retryAfterMax, "retry-after-max", jobs.RetryAfterMaxDefault, "longest a receiver's Retry-After may delay the next attempt")
	flags.IntVar(&f.maxInFlight, "max-in-flight", 0, "default cap on one subscription's deliveries in flight on this daemon, so a slow endpoint cannot take every worker (default: half of --delivery-workers); a subscription's own --max-in-flight replaces it")
	flags.IntVar(&f.circuitFailures, "circuit-failures", jobs.CircuitThresholdDefault, "failed attempts in a row that open a subscription's circuit: its deliveries then wait, spending no attempts")
	flags.DurationVar(&f.circuitBackoff, "circuit-backoff", jobs.CircuitBackoffMinDefault, "how long an opened circuit first waits before a probe; doubles while probes fail")
	flags.DurationVar(&f.circuitBackoffMx, "circuit-backoff-max", jobs.CircuitBackoffMaxDefault, "longest wait between probes of a failing subscription")
	flags.DurationVar(&f.disableAfter, "disable-after", jobs.CircuitDisableAfterDefault, "disable a subscription whose every attempt has failed for this long, and publish outboxd.subscription.disabled (0: never)")
	flags.DurationVar(&f.rescueAfter, "rescue-stuck-after", 0, "retry jobs still running after this long, presuming their daemon died; must exceed --request-timeout + 10s (default: that + 1m)")
	flags.DurationVar(&f.takeOverAfter, "take-over-after", jobs.TakeOverAfterDefault, "when another daemon's heartbeat has been missing this long, presume it dead and run the jobs it was running again (at least 3 heartbeats of 2s)")
	flags.DurationVar(&f.completedRetention, "completed-retention", jobs.CompletedRetentionDefault, "keep delivered deliveries this long")
	flags.DurationVar(&f.deadRetention, "dead-retention", jobs.DeadRetentionDefault, "keep dead and cancelled deliveries this long")
	flags.DurationVar(&f.eventRetention, "event-retention", jobs.EventRetentionDefault, "keep events this long, and then until all their deliveries are final")
	flags.DurationVar(&f.retentionInterval, "retention-interval", jobs.RetentionIntervalDefault, "how often one daemon drops partitions of outbox.events past --event-retention and makes new ones ahead")
	flags.DurationVar(&f.shutdownTimeout, "shutdown-timeout", jobs.ShutdownTimeoutDefault, "on SIGTERM, how long in-flight deliveries may finish before they are handed back")
	a.bindEnv(flags, "http-addr", "OUTBOXD_HTTP_ADDR")
	a.bindEnv(flags, "public-url", "OUTBOXD_PUBLIC_URL")
	a.bindEnv(flags, "redis-url", "OUTBOXD_REDIS_URL")
	a.bindEnv(flags, "allow-private-targets", "OUTBOXD_ALLOW_PRIVATE_TARGETS")
	a.bindEnv(flags, "delivery-workers", "OUTBOXD_DELIVERY_WORKERS")
	return cmd
}

func runDaemon(ctx context.Context, a *app, f *runFlags) error {
	logger, err := a.logger()
	if err != nil {
		return err
	}
	schedule, err := outbox.ParseRetrySchedule(f.retrySchedule)
	if err != nil {
		return fmt.Errorf("--retry-schedule: %w", err)
	}
	switch {
	case f.maxInFlight < 0:
		return fmt.Errorf("--max-in-flight: %d is negative (0 takes the default)", f.maxInFlight)
	case f.circuitFailures < 1:
		return fmt.Errorf("--circuit-failures: must be at least 1, not %d", f.circuitFailures)
	case f.circuitBackoff <= 0 || f.circuitBackoffMx < f.circuitBackoff:
		return fmt.Errorf("--circuit-backoff (%s) must be positive and at most --circuit-backoff-max (%s)", f.circuitBackoff, f.circuitBackoffMx)
	case f.disableAfter < 0:
		return fmt.Errorf("--disable-after: %s is negative (0 never disables)", f.disableAfter)
	case f.httpReadTimeout <= 0:
		return fmt.Errorf("--http-read-timeout: must be positive, not %s", f.httpReadTimeout)
	case f.httpIdleTimeout <= 0:
		return fmt.Errorf("--http-idle-timeout: must be positive, not %s", f.httpIdleTimeout)
	case f.httpMaxConnections < 1:
		return fmt.Errorf("--http-max-connections: must be at least 1, not %d", f.httpMaxConnections)
	case f.sessionLifetime <= 0 || f.sessionLifetime > outbox.WebSessionLifetimeMax:
		return fmt.Errorf("--session-lifetime: %s is not between 0 and %s", f.sessionLifetime, outbox.WebSessionLifetimeMax)
	}
	keyring, err := a.keyring()
	if err != nil {
		return err
	}
	if keyring == nil {
		return fmt.Errorf("cannot sign deliveries: %w", outbox.ErrNoEncryptionKey)
	}
	// `outboxd migrate down` finds running daemons by this name.
	host, _ := os.Hostname()
	a.applicationName = migrations.DaemonApplicationName(a.schema, fmt.Sprintf("%d@%s", os.Getpid(), host))
	store, pool, err := a.openStore(ctx, &storeOpts{allowPrivateTargets: f.allowPrivateTargets})
	if err != nil {
		return err
	}
	defer pool.Close()
	g, err := guard(f.allowPrivateTargets)
	if err != nil {
		return err
	}

	if err := a.checkPooler(ctx, pool, f.migrate); err != nil {
		return err
	}
	migrator, err := migrations.New(pool, &migrations.Config{Schema: a.schema, Logger: logger, Keyring: keyring})
	if err != nil {
		return err
	}
	if f.migrate {
		if _, err := migrator.Up(ctx); err != nil {
			return err
		}
	}
	versions, err := migrator.Status(ctx)
	if err != nil {
		return err
	}
	if versions.Behind() {
		return fmt.Errorf("schema %s is at River %d/%d, outboxd %d/%d: run `outboxd migrate up` (or pass --migrate)",
			a.schema, versions.RiverCurrent, versions.RiverLatest, versions.OutboxdCurrent, versions.OutboxdLatest)
	}
	if !versions.UpToDate() {
		logger.WarnContext(ctx, "the schema is newer than this outboxd: finish the upgrade of this daemon",
			slog.Int("outboxd_current", versions.OutboxdCurrent), slog.Int("outboxd_latest", versions.OutboxdLatest))
	}
	// Migrating without the key leaves custom header values from before
	// migration 7 in plaintext; the daemon always has the key.
	sealed, err := store.HeadersSealPlaintext(ctx)
	if err != nil {
		return fmt.Errorf("encrypt custom header values: %w", err)
	}
	if sealed > 0 {
		logger.InfoContext(ctx, "encrypted custom header values kept in plaintext before", slog.Int64("subscriptions", sealed))
	}

	var redisClient *redis.Client
	if f.redisURL != "" {
		options, err := redis.ParseURL(f.redisURL)
		if err != nil {
			return fmt.Errorf("--redis-url: %w", err)
		}
		redisClient = redis.NewClient(options)
		defer redisClient.Close()
		logger.InfoContext(ctx, "redis wake-ups enabled", slog.String("redis", options.Addr))
	}

	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	registry.MustRegister(jobs.NewBacklogCollector(store))
	daemon, err := jobs.NewDaemon(pool, &jobs.Config{
		Store:   store,
		Logger:  logger,
		Metrics: jobs.NewMetrics(registry),
		Guard:   g,
		Relay: jobs.RelayConfig{
			BatchSize:        f.batchSize,
			PollInterval:     f.pollInterval,
			IdlePollInterval: f.idlePoll,
		},
		Delivery: jobs.DeliveryConfig{
			RetrySchedule:      schedule,
			RequestTimeout:     f.requestTimeout,
			ConnectTimeout:     f.connectTimeout,
			RetryAfterMax:      f.retryAfterMax,
			UserAgent:          "outboxd/" + outboxdVersion(),
			MaxInFlightDefault: f.maxInFlight,
			Circuit: outbox.CircuitPolicy{
				Threshold:    f.circuitFailures,
				BackoffMin:   f.circuitBackoff,
				BackoffMax:   f.circuitBackoffMx,
				DisableAfter: disableAfter(f.disableAfter),
			},
		},
		FanoutWorkers:        f.fanoutWorkers,
		DeliveryWorkers:      f.deliveryWorkers,
		FetchCooldown:        f.fetchCooldown,
		FetchPollInterval:    f.fetchPoll,
		RescueStuckJobsAfter: f.rescueAfter,
		TakeOverAfter:        f.takeOverAfter,
		PollOnly:             a.pooler == poolerTransaction,
		Version:              outboxdVersion(),
		CompletedRetention:   f.completedRetention,
		DeadRetention:        f.deadRetention,
		EventRetention:       f.eventRetention,
		RetentionInterval:    f.retentionInterval,
		Redis:                redisClient,
	})
	if err != nil {
		return err
	}

	adminTokens, err := a.adminTokens(f.apiTokenFile)
	if err != nil {
		return err
	}
	if len(adminTokens) == 0 {
		logger.WarnContext(ctx, "no admin token: the /v1 API accepts only organization tokens and the River UI is closed; set OUTBOXD_API_TOKEN")
	}
	riverUI, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(daemon.Client(), nil),
		Logger:    slog.New(daemon.QuietDuringOutage(jobs.WarningsOnly(logger.Handler()))),
		Prefix:    "/riverui",
	})
	if err != nil {
		return fmt.Errorf("river ui: %w", err)
	}
	if err := riverUI.Start(ctx); err != nil {
		return fmt.Errorf("river ui: %w", err)
	}

	listener, err := net.Listen("tcp", f.httpAddr)
	if err != nil {
		return fmt.Errorf("--http-addr: %w", err)
	}
	server := httpapi.NewServer(httpapi.NewHandler(&httpapi.Config{
		Logger:            slog.New(daemon.QuietDuringOutage(logger.Handler())), // a database outage is reported once
		Ready:             schemaReady(logger, daemon.Ready, migrator.Check),
		Degraded:          daemon.Degraded,
		Metrics:           promhttp.HandlerFor(registry, promhttp.HandlerOpts{}),
		Store:             store,
		Operations:        daemon.Operations(),
		AdminTokens:       adminTokens,
		TokenOrganization: tokenOrganization(store),
		RiverUI:           riverUI,
		SessionLifetime:   f.sessionLifetime,
		PublicURL:         f.publicURL,
		LettaStatus:       lettaStatus(pool, a.schema),
	}), &httpapi.ServerConfig{
		ReadTimeout:    f.httpReadTimeout,
		WriteTimeout:   httpapi.WriteTimeoutFor(f.requestTimeout),
		IdleTimeout:    f.httpIdleTimeout,
		MaxConnections: f.httpMaxConnections,
		Logger:         logger,
	})
	serveErr := make(chan error, 1)
	go func() { serveErr <- server.Serve(listener) }()
	if f.pprofAddr != "" {
		profiles, err := startProfiles(f.pprofAddr)
		if err != nil {
			_ = server.Close()
			return err
		}
		defer profiles.Close() //nolint:errcheck // exiting anyway
		logger.InfoContext(ctx, "serving Go profiles", slog.String("pprof_addr", profiles.Addr().String()))
	}

	if err := daemon.Start(ctx); err != nil {
		_ = server.Close()
		return err
	}
	logger.InfoContext(ctx, "outboxd running", slog.String("version", outboxdVersion()), slog.String("http_addr", listener.Addr().String()))

	select {
	case <-ctx.Done():
		logger.InfoContext(ctx, "stopping: finishing in-flight deliveries", slog.Duration("timeout", f.shutdownTimeout),
			slog.String("cause", context.Cause(ctx).Error()))
	case err := <-serveErr:
		logger.ErrorContext(ctx, "http server failed; stopping", slog.String("error", err.Error()))
	}

	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.shutdownTimeout)
	defer cancel()
	stopErr := daemon.Stop(stopCtx)
	shutdownCtx, cancelShutdown := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancelShutdown()
	if err := server.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.WarnContext(ctx, "http server shutdown", slog.String("error", err.Error()))
	}
	if stopErr != nil {
		return stopErr
	}
	logger.InfoContext(ctx, "outboxd stopped")
	return nil
}

// schemaReady adds to ready a check that the schema still has every migration
// this daemon needs: someone may roll it back under a running daemon (migrate
// down). It logs when that starts and when it ends.
func schemaReady(logger *slog.Logger, ready, check func(context.Context) error) func(context.Context) error {
	var (
		mu     sync.Mutex
		behind bool
	)
	return func(ctx context.Context) error {
		if err := ready(ctx); err != nil {
			return err
		}
		err := check(ctx)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil && !behind:
			logger.ErrorContext(ctx, "not ready", slog.String("error", err.Error()))
		case err == nil && behind:
			logger.InfoContext(ctx, "ready again: the schema has every migration this daemon needs")
		}
		behind = err != nil
		return err
	}
}

// disableAfter maps --disable-after 0 ("never") to the daemon's negative.
func disableAfter(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
