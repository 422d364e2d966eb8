// Command bench is outboxd's end-to-end benchmark. It runs the real daemon (relay,
// fan-out, delivery) with its default settings against a real Postgres and an
// in-process receiver that verifies every signature, and compares it with the
// ceiling it is built on: a plain River client whose jobs each make one signed POST
// to the same receiver, with the same worker and fetch settings.
//
//	go run ./bench -runs 3 -out docs/benchmarks.md
//
// Every run works in fresh schemas (bench_…) that it drops afterwards, so the
// benchmark can point at any database. Scenarios:
//
//   - drain: N events already committed, one subscription; deliveries/s from
//     daemon start to the last verified receipt.
//   - steady: producers commit 1,000 events/s (an UPDATE of an agent row and the
//     outbox INSERT in one transaction) while the daemon delivers; commit-to-receipt
//     latency p50/p99/max.
//   - producer: the cost of the outbox to the producer: transactions/s of the
//     UPDATE alone against UPDATE + outbox INSERT, 8 clients, daemon stopped.
//   - ceiling: River alone, N jobs that each make one signed POST.
//   - redis: steady again, with the daemon subscribed to Redis and every producer
//     PUBLISHing a wake-up after its commit.
//   - fanout: one event to 1,000 subscriptions; time to the last verified receipt.
//   - hanging: steady at a lower rate to two subscriptions, one of whose endpoints
//     holds every request until the timeout; the healthy endpoint's rate and
//     latency against the same load with both endpoints healthy.
//   - history: the delivery history's filters over a million deliveries (first
//     run only).
//
// Two long scenarios run only when named (-scenario scale, -scenario backlog)
// and write docs/benchmarks-scale.md (make bench-scale, make bench-backlog):
//
//   - scale: -hours of history at -rate events/s filled in by set-based SQL,
//     then steady, drain, history and a retention pass beside an empty schema.
//   - backlog: the daemon's memory (its own process) while -backlog-events
//     events wait for a receiver that is down, then drain.
package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/outboxd/outboxd/jobs"
	"github.com/outboxd/outboxd/migrations"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/netguard"
	"github.com/outboxd/outboxd/outbox/secretbox"
	"github.com/outboxd/outboxd/outbox/signing"
)

// options are the command line.
type options struct {
	databaseURL string
	runs        int
	out         string
	quick       bool
	scenarios   map[string]bool

	drainEvents    int
	steadyRate     int
	steadyDuration time.Duration
	producerTime   time.Duration
	redisURL       string
	fanoutSubs     int
	hangRate       int
	hangDuration   time.Duration
	idleTime       time.Duration

	// rate and duration are the load of the extra scenarios (soak, daemons) and
	// rate the history of scale; hours and backlogEvents size scale and backlog
	// (bench/scale.go, bench/backlog.go).
	rate          int
	duration      time.Duration
	hours         float64
	backlogEvents int
}

var allScenarios = []string{"drain", "steady", "producer", "ceiling", "cost", "light", "poisson", "capacity", "redis", "fanout", "hanging", "history"}

// longScenarios run only when named: they take from minutes to hours, and write
// their own report (bench/scale.go, bench/backlog.go).
var longScenarios = []string{"scale", "backlog"}

const (
	poolConns        = 20
	producerClients  = 8
	steadyProducers  = 8
	agentRows        = 1_000
	warmup           = 2 * time.Second
	floorDeliveriesS = 1_000
)

func main() {
	opts := options{}
	flag.StringVar(&opts.databaseURL, "database-url", cmp.Or(os.Getenv("TEST_DATABASE_URL"), os.Getenv("DATABASE_URL")), "Postgres to benchmark against (env TEST_DATABASE_URL or DATABASE_URL)")
	flag.IntVar(&opts.runs, "runs", 3, "runs of every scenario; figures are medians with min–max")
	flag.StringVar(&opts.out, "out", "", "write the report (Markdown) to this file as well as stdout")
	flag.BoolVar(&opts.quick, "quick", false, "small sizes, for a smoke run (figures are not representative)")
	scenarios := flag.String("scenarios", strings.Join(allScenarios, ","), "comma-separated scenarios to run")
	flag.IntVar(&opts.drainEvents, "drain-events", 20_000, "events in the backlog drain (and jobs in the ceiling)")
	scenario := flag.String("scenario", "", "run this one scenario (an alias of -scenarios; also "+strings.Join(append(slices.Clone(longScenarios), extraScenarioNames()...), ", ")+", which the default list leaves out)")
	flag.IntVar(&opts.rate, "rate", 1_000, "events/s of the soak and daemons loads, and of scale's filled history")
	flag.DurationVar(&opts.duration, "duration", 30*time.Minute, "length of the soak scenario")
	flag.Float64Var(&opts.hours, "hours", 24, "scale: hours of history to fill in before measuring")
	flag.IntVar(&opts.backlogEvents, "backlog-events", 1_000_000, "backlog: events committed while the receiver is down")
	flag.StringVar(&opts.redisURL, "redis-url", cmp.Or(os.Getenv("REDIS_URL"), "redis://127.0.0.1:6379/0"), "Redis for the redis scenario (env REDIS_URL)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of this process (the daemon under test runs in it) to this file, for `go tool pprof`")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: -cpuprofile: %v\n", err)
			os.Exit(2)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "bench: -cpuprofile: %v\n", err)
			os.Exit(2)
		}
		defer pprof.StopCPUProfile()
	}

	opts.steadyRate, opts.steadyDuration, opts.producerTime = 1_000, 20*time.Second, 10*time.Second
	opts.fanoutSubs, opts.hangRate, opts.hangDuration = 1_000, 500, 15*time.Second
	opts.idleTime = 30 * time.Second
	if opts.quick {
		opts.drainEvents, opts.steadyDuration, opts.producerTime = min(opts.drainEvents, 2_000), 5*time.Second, 3*time.Second
		opts.hangDuration = 5 * time.Second
		opts.idleTime = 5 * time.Second
	}
	if *scenario != "" {
		if extra, ok := extraScenarios[*scenario]; ok {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			if err := runExtra(ctx, &opts, extra); err != nil {
				fmt.Fprintf(os.Stderr, "bench: %v\n", err)
				os.Exit(1)
			}
			return
		}
		*scenarios = *scenario
	}
	opts.scenarios = map[string]bool{}
	for _, name := range strings.Split(*scenarios, ",") {
		name = strings.TrimSpace(name)
		if !slices.Contains(allScenarios, name) && !slices.Contains(longScenarios, name) {
			fmt.Fprintf(os.Stderr, "bench: unknown scenario %q (known: %s)\n", name, strings.Join(append(allScenarios, longScenarios...), ", "))
			os.Exit(2)
		}
		opts.scenarios[name] = true
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, &opts); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, opts *options) error {
	if opts.databaseURL == "" {
		return errors.New("no database: pass -database-url or set DATABASE_URL (make bench finds or starts one)")
	}
	if opts.runs < 1 {
		return errors.New("-runs must be at least 1")
	}
	config, err := pgxpool.ParseConfig(opts.databaseURL)
	if err != nil {
		return fmt.Errorf("parse database url: %w", err)
	}
	config.MaxConns = poolConns
	pool, err := pgxpool.NewWithConfig(ctx, config)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer pool.Close()
	if err := pool.Ping(ctx); err != nil {
		return fmt.Errorf("connect: %w", err)
	}

	rcv, err := startReceiver()
	if err != nil {
		return err
	}
	defer rcv.close()

	if opts.scenarios["scale"] || opts.scenarios["backlog"] {
		return runLong(ctx, pool, rcv, opts)
	}

	results := &results{}
	for i := 1; i <= opts.runs; i++ {
		logf("run %d of %d", i, opts.runs)
		if err := runOnce(ctx, pool, rcv, opts, results); err != nil {
			return fmt.Errorf("run %d: %w", i, err)
		}
	}
	if bad := rcv.badSignatures.Load(); bad > 0 {
		return fmt.Errorf("the receiver rejected %d signatures", bad)
	}

	if len(opts.scenarios) < len(allScenarios) {
		if opts.out != "" {
			return errors.New("a report needs every scenario; drop -scenarios or -out")
		}
		return nil
	}
	machine := describeMachine(ctx, pool)
	report := results.markdown(opts, machine)
	fmt.Print(report)
	if opts.out != "" {
		if err := os.WriteFile(opts.out, []byte(report), 0o644); err != nil { //nolint:gosec // a report, meant to be read
			return fmt.Errorf("write report: %w", err)
		}
		logf("wrote %s", opts.out)
	}
	return nil
}

// benchStart is when this process began; log lines say how long ago.
var benchStart = time.Now()

func logf(format string, args ...any) {
	elapsed := time.Since(benchStart).Truncate(time.Second)
	fmt.Fprintf(os.Stderr, "bench %8s: "+format+"\n", append([]any{elapsed}, args...)...)
}

// runOnce runs every scenario once, each in its own fresh schema.
func runOnce(ctx context.Context, pool *pgxpool.Pool, rcv *receiver, opts *options, res *results) error {
	if opts.scenarios["drain"] {
		if err := runDrain(ctx, pool, rcv, opts, res); err != nil {
			return err
		}
	}
	if opts.scenarios["steady"] {
		if err := runSteady(ctx, pool, rcv, opts, res); err != nil {
			return err
		}
	}
	if opts.scenarios["producer"] {
		if err := runProducer(ctx, pool, opts, res); err != nil {
			return err
		}
	}
	if opts.scenarios["ceiling"] {
		if err := runCeiling(ctx, pool, rcv, opts, res); err != nil {
			return err
		}
	}
	if err := runPerf(ctx, pool, rcv, opts, res); err != nil {
		return err
	}
	return runControl(ctx, pool, rcv, opts, res)
}

func runDrain(ctx context.Context, pool *pgxpool.Pool, rcv *receiver, opts *options, res *results) error {
	rate, err := withSchema(ctx, pool, func(env *benchEnv) (float64, error) { return drain(ctx, env, rcv, opts.drainEvents) })
	if err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	res.drain = append(res.drain, rate)
	logf("  drain: %.0f deliveries/s", rate)
	return nil
}

func runSteady(ctx context.Context, pool *pgxpool.Pool, rcv *receiver, opts *options, res *results) error {
	_, err := withSchema(ctx, pool, func(env *benchEnv) (float64, error) {
		s, err := steady(ctx, env, rcv, opts)
		if err != nil {
			return 0, err
		}
		res.steady = append(res.steady, s)
		logf("  steady: %.0f events/s published, %.0f deliveries/s, latency p50 %s p99 %s max %s",
			s.publishedPerSec, s.deliveredPerSec, ms(s.p50), ms(s.p99), ms(s.max))
		return 0, nil
	})
	if err != nil {
		return fmt.Errorf("steady: %w", err)
	}
	return nil
}

func runProducer(ctx context.Context, pool *pgxpool.Pool, opts *options, res *results) error {
	_, err := withSchema(ctx, pool, func(env *benchEnv) (float64, error) {
		p, err := producer(ctx, env, opts.producerTime)
		if err != nil {
			return 0, err
		}
		res.producer = append(res.producer, p)
		logf("  producer: %.0f TPS without the outbox, %.0f with (%.2f×)", p.plain.tps, p.outbox.tps, p.outbox.tps/p.plain.tps)
		return 0, nil
	})
	if err != nil {
		return fmt.Errorf("producer: %w", err)
	}
	return nil
}

func runCeiling(ctx context.Context, pool *pgxpool.Pool, rcv *receiver, opts *options, res *results) error {
	rate, err := withSchema(ctx, pool, func(env *benchEnv) (float64, error) { return ceiling(ctx, env, rcv, opts.drainEvents) })
	if err != nil {
		return fmt.Errorf("ceiling: %w", err)
	}
	res.ceiling = append(res.ceiling, rate)
	logf("  ceiling: %.0f jobs/s", rate)
	return nil
}

// benchEnv is one fresh, migrated schema.
type benchEnv struct {
	pool   *pgxpool.Pool
	schema string
	store  *outbox.Store
}

func loopbackGuard() *netguard.Guard {
	allow, _ := netguard.ParsePrefixes("127.0.0.0/8")
	return &netguard.Guard{Allow: allow}
}

// withSchema migrates a fresh schema with an agents table, runs fn in it and drops it.
func withSchema(ctx context.Context, pool *pgxpool.Pool, fn func(env *benchEnv) (float64, error)) (float64, error) {
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	schema := "bench_" + hex.EncodeToString(suffix)
	defer func() {
		dropCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if _, err := pool.Exec(dropCtx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
			logf("drop schema %s: %v", schema, err)
		}
	}()

	migrator, err := migrations.New(pool, &migrations.Config{Schema: schema, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return 0, err
	}
	if _, err := migrator.Up(ctx); err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	// A stand-in for a producer's business table (Letta's agents).
	if _, err := pool.Exec(ctx, fmt.Sprintf(`
		CREATE TABLE %[1]s.agents (id text PRIMARY KEY, step_count bigint NOT NULL DEFAULT 0, updated_at timestamptz NOT NULL DEFAULT now());
		INSERT INTO %[1]s.agents (id) SELECT 'agent-' || g FROM generate_series(1, %[2]d) AS g;`, schema, agentRows)); err != nil {
		return 0, fmt.Errorf("create agents: %w", err)
	}

	key := make([]byte, secretbox.KeySize)
	_, _ = rand.Read(key)
	boxKey, err := secretbox.NewKey(key)
	if err != nil {
		return 0, err
	}
	store, err := outbox.NewStore(pool, &outbox.StoreConfig{Schema: schema, Keyring: secretbox.NewKeyring(boxKey), Guard: loopbackGuard()})
	if err != nil {
		return 0, err
	}
	return fn(&benchEnv{pool: pool, schema: schema, store: store})
}

// subscribe points one subscription for every event at the receiver.
func subscribe(ctx context.Context, env *benchEnv, rcv *receiver) error {
	sub, err := env.store.SubscriptionCreate(ctx, &outbox.SubscriptionCreateParams{URL: rcv.url, EventTypes: []string{"*"}})
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	rcv.secrets.Store(&[]signing.Secret{sub.Secret})
	return nil
}

// startDaemon starts a daemon with the default configuration, except that it may
// reach the loopback receiver.
func startDaemon(ctx context.Context, env *benchEnv) (*jobs.Daemon, error) {
	daemon, err := jobs.NewDaemon(env.pool, &jobs.Config{Store: env.store, Guard: loopbackGuard()})
	if err != nil {
		return nil, err
	}
	if err := daemon.Start(ctx); err != nil {
		return nil, fmt.Errorf("start daemon: %w", err)
	}
	return daemon, nil
}

func stopDaemon(ctx context.Context, daemon *jobs.Daemon) {
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := daemon.Stop(stopCtx); err != nil {
		logf("stop daemon: %v", err)
	}
}

// payload is a Letta-like step payload of about 300 bytes.
func payload(seq int) string {
	return fmt.Sprintf(`{"step_id":"step-%08d","run_id":"run-%06d","model":"gpt-4o-mini","stop_reason":"end_turn","usage":{"prompt_tokens":1834,"completion_tokens":212,"total_tokens":2046},"messages":["message-%08d-a","message-%08d-b"],"tool_calls":1}`, seq, seq/10, seq, seq)
}

// drain commits n events before the daemon starts and times their delivery.
func drain(ctx context.Context, env *benchEnv, rcv *receiver, n int) (float64, error) {
	if err := subscribe(ctx, env, rcv); err != nil {
		return 0, err
	}
	if _, err := env.pool.Exec(ctx, fmt.Sprintf(`
		INSERT INTO %[1]s.events (type, agent_id, organization_id, payload)
		SELECT 'agent.step.completed', 'agent-' || (g %% %[3]d + 1), 'org-1',
		       jsonb_build_object('step_id', 'step-' || g, 'run_id', 'run-' || g / 10, 'model', 'gpt-4o-mini',
		                          'stop_reason', 'end_turn', 'usage', jsonb_build_object('prompt_tokens', 1834, 'completion_tokens', 212))
		FROM generate_series(1, %[2]d) AS g;
		ANALYZE %[1]s.events;`, env.schema, n, agentRows)); err != nil {
		return 0, fmt.Errorf("insert backlog: %w", err)
	}

	done := rcv.expect(n)
	cpu := startCPU(env.pool.Config().ConnConfig.Database)
	start := time.Now()
	daemon, err := startDaemon(ctx, env)
	if err != nil {
		return 0, err
	}
	defer stopDaemon(ctx, daemon)
	if err := rcv.wait(ctx, done, 5*time.Minute); err != nil {
		return 0, err
	}
	rate := float64(n) / time.Since(start).Seconds()
	self, server := cpu.stop().per(n)
	logf("  drain: CPU per delivery %.0f µs here (daemon and receiver), %.0f µs in Postgres", self, server)
	return rate, nil
}

type steadyResult struct {
	publishedPerSec float64
	deliveredPerSec float64
	p50, p99, max   time.Duration

	// legs and slowLegs split commit→receipt (paced scenarios only): medians
	// over every event and over the slowest 1 %.
	legs, slowLegs stages
}

// steady publishes at opts.steadyRate for opts.steadyDuration with the default
// daemon and one subscription.
func steady(ctx context.Context, env *benchEnv, rcv *receiver, opts *options) (*steadyResult, error) {
	if err := subscribe(ctx, env, rcv); err != nil {
		return nil, err
	}
	return steadyWith(ctx, env, rcv, &steadyConfig{rate: opts.steadyRate, duration: opts.steadyDuration})
}

// steadyConfig varies the steady scenario.
type steadyConfig struct {
	rate     int
	duration time.Duration
	// redis, if set, is given to the daemon, and each producer PUBLISHes a wake-up
	// after each commit.
	redis *redis.Client
	// beforeStop runs before the daemon is stopped.
	beforeStop func()
	// configure, if set, changes the daemon's configuration before it starts.
	configure func(*jobs.Config)
}

// steadyWith publishes at a fixed rate while the daemon delivers to the
// subscriptions already made. Latency is from the producer's COMMIT returning to
// the receiver verifying the webhook on its main path; events committed during
// the warm-up are delivered but not measured.
func steadyWith(ctx context.Context, env *benchEnv, rcv *receiver, cfg *steadyConfig) (*steadyResult, error) {
	config := &jobs.Config{Store: env.store, Guard: loopbackGuard(), Redis: cfg.redis}
	if cfg.configure != nil {
		cfg.configure(config)
	}
	daemon, err := jobs.NewDaemon(env.pool, config)
	if err != nil {
		return nil, err
	}
	if err := daemon.Start(ctx); err != nil {
		return nil, fmt.Errorf("start daemon: %w", err)
	}
	defer func() {
		if cfg.beforeStop != nil {
			cfg.beforeStop()
		}
		stopDaemon(ctx, daemon)
	}()
	wakeChannel := outbox.WakeChannel(env.schema)

	perProducer := int(float64(cfg.rate)*(warmup+cfg.duration).Seconds()) / steadyProducers
	total := perProducer * steadyProducers
	commits := &sync.Map{} // event id → commit time, for measured events
	done := rcv.expect(total)

	interval := time.Duration(float64(time.Second) * steadyProducers / float64(cfg.rate))
	start := time.Now()
	measureFrom := start.Add(warmup)
	errs := make(chan error, steadyProducers)
	var wg sync.WaitGroup
	for p := range steadyProducers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			offset := time.Duration(p) * interval / steadyProducers
			for i := range perProducer {
				due := start.Add(offset + time.Duration(i)*interval)
				if wait := time.Until(due); wait > 0 {
					select {
					case <-time.After(wait):
					case <-ctx.Done():
						errs <- ctx.Err()
						return
					}
				}
				seq := i*steadyProducers + p
				id, err := publishWithUpdate(ctx, env, seq)
				if err != nil {
					errs <- err
					return
				}
				committed := time.Now()
				if committed.After(measureFrom) {
					commits.Store(id, committed)
				}
				if cfg.redis != nil {
					// After the commit, and a failure is only a slower pickup.
					_ = cfg.redis.Publish(ctx, wakeChannel, "1").Err()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	if err := rcv.wait(ctx, done, 2*time.Minute); err != nil {
		return nil, err
	}

	// Rates over the measured window: events committed after the warm-up, from the
	// end of the warm-up to the last commit and to the last receipt.
	var measured int
	var lastCommit time.Time
	commits.Range(func(_, value any) bool {
		measured++
		if at := value.(time.Time); at.After(lastCommit) { //nolint:forcetypeassert // only times are stored
			lastCommit = at
		}
		return true
	})
	received := rcv.receipts()
	latencies := make([]time.Duration, 0, measured)
	var lastReceipt time.Time
	commits.Range(func(key, value any) bool {
		at := received[key.(string)] //nolint:forcetypeassert // only ids and times are stored
		latencies = append(latencies, at.Sub(value.(time.Time)))
		if at.After(lastReceipt) {
			lastReceipt = at
		}
		return true
	})
	if measured == 0 {
		return nil, errors.New("no event was committed after the warm-up")
	}
	slices.Sort(latencies)
	legs, slowLegs, err := stageTrace(ctx, env, commits, received, start)
	if err != nil {
		return nil, err
	}
	return &steadyResult{
		publishedPerSec: float64(measured) / lastCommit.Sub(measureFrom).Seconds(),
		deliveredPerSec: float64(measured) / lastReceipt.Sub(measureFrom).Seconds(),
		p50:             percentile(latencies, 0.50),
		p99:             percentile(latencies, 0.99),
		max:             latencies[len(latencies)-1],
		legs:            legs,
		slowLegs:        slowLegs,
	}, nil
}

// publishWithUpdate is the producer's transaction: a business UPDATE and the
// outbox INSERT, committed together.
func publishWithUpdate(ctx context.Context, env *benchEnv, seq int) (string, error) {
	var id string
	err := pgx.BeginFunc(ctx, env.pool, func(tx pgx.Tx) error {
		agent := fmt.Sprintf("agent-%d", seq%agentRows+1)
		if _, err := tx.Exec(ctx, "UPDATE "+env.schema+".agents SET step_count = step_count + 1, updated_at = now() WHERE id = $1", agent); err != nil {
			return err
		}
		event, err := env.store.PublishTx(ctx, tx, &outbox.PublishParams{
			Type: "agent.step.completed", AgentID: agent, OrganizationID: "org-1", Payload: json.RawMessage(payload(seq)),
		})
		if err != nil {
			return err
		}
		id = event.ID
		return nil
	})
	return id, err
}

type producerRun struct {
	tps      float64
	p50, p99 time.Duration
}

type producerResult struct {
	plain, outbox producerRun
}

// producer measures what publishing costs the producer: the same transactions
// with and without the outbox INSERT, no daemon running.
func producer(ctx context.Context, env *benchEnv, duration time.Duration) (*producerResult, error) {
	plain, err := producerLoad(ctx, env, duration, false)
	if err != nil {
		return nil, err
	}
	withOutbox, err := producerLoad(ctx, env, duration, true)
	if err != nil {
		return nil, err
	}
	return &producerResult{plain: *plain, outbox: *withOutbox}, nil
}

func producerLoad(ctx context.Context, env *benchEnv, duration time.Duration, publish bool) (*producerRun, error) {
	var mu sync.Mutex
	var latencies []time.Duration
	var firstErr error
	deadline := time.Now().Add(duration)
	start := time.Now()
	var wg sync.WaitGroup
	for c := range producerClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 20_000)
			for i := 0; time.Now().Before(deadline); i++ {
				seq := i*producerClients + c
				began := time.Now()
				var err error
				if publish {
					_, err = publishWithUpdate(ctx, env, seq)
				} else {
					err = pgx.BeginFunc(ctx, env.pool, func(tx pgx.Tx) error {
						_, err := tx.Exec(ctx, "UPDATE "+env.schema+".agents SET step_count = step_count + 1, updated_at = now() WHERE id = $1", fmt.Sprintf("agent-%d", seq%agentRows+1))
						return err
					})
				}
				if err != nil {
					mu.Lock()
					firstErr = cmp.Or(firstErr, err)
					mu.Unlock()
					return
				}
				local = append(local, time.Since(began))
			}
			mu.Lock()
			latencies = append(latencies, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	elapsed := time.Since(start)
	slices.Sort(latencies)
	return &producerRun{
		tps: float64(len(latencies)) / elapsed.Seconds(),
		p50: percentile(latencies, 0.50),
		p99: percentile(latencies, 0.99),
	}, nil
}

// ceilingArgs is a job that makes one signed POST, like a delivery.
type ceilingArgs struct {
	EventID string          `json:"event_id"`
	Payload json.RawMessage `json:"payload"`
}

func (ceilingArgs) Kind() string { return "bench.signed_post" }

type ceilingWorker struct {
	river.WorkerDefaults[ceilingArgs]
	client *http.Client
	url    string
	secret signing.Secret
}

func (w *ceilingWorker) Work(ctx context.Context, job *river.Job[ceilingArgs]) error {
	now := time.Now()
	body, err := json.Marshal(map[string]any{
		"id": job.Args.EventID, "type": "agent.step.completed", "timestamp": now.UTC().Format(time.RFC3339Nano),
		"organization_id": "org-1", "agent_id": "agent-1", "data": job.Args.Payload,
	})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	signing.SetHeaders(req.Header, job.Args.EventID, now, body, w.secret)
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("receiver answered %d", resp.StatusCode)
	}
	return nil
}

// ceiling times a plain River client working n signed-POST jobs with the daemon's
// worker count and fetch settings and the daemon's HTTP client.
func ceiling(ctx context.Context, env *benchEnv, rcv *receiver, n int) (float64, error) {
	secret, err := signing.GenerateSecret()
	if err != nil {
		return 0, err
	}
	rcv.secrets.Store(&[]signing.Secret{secret})

	workers := river.NewWorkers()
	river.AddWorker(workers, &ceilingWorker{
		client: netguard.NewClient(loopbackGuard(), nil),
		url:    rcv.url,
		secret: secret,
	})
	client, err := river.NewClient(riverpgxv5.New(env.pool), &river.Config{
		Schema:            env.schema,
		Logger:            slog.New(slog.DiscardHandler),
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: jobs.DeliveryWorkersDefault}},
		Workers:           workers,
		FetchCooldown:     jobs.FetchCooldownDefault,
		FetchPollInterval: jobs.FetchPollIntervalDefault,
	})
	if err != nil {
		return 0, err
	}

	params := make([]river.InsertManyParams, n)
	for i := range params {
		params[i] = river.InsertManyParams{Args: ceilingArgs{EventID: fmt.Sprintf("evt_bench%011d", i), Payload: json.RawMessage(payload(i))}}
	}
	if _, err := client.InsertManyFast(ctx, params); err != nil {
		return 0, fmt.Errorf("insert jobs: %w", err)
	}
	if _, err := env.pool.Exec(ctx, "ANALYZE "+env.schema+".river_job"); err != nil {
		return 0, err
	}

	done := rcv.expect(n)
	cpu := startCPU(env.pool.Config().ConnConfig.Database)
	start := time.Now()
	if err := client.Start(ctx); err != nil {
		return 0, err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		_ = client.Stop(stopCtx)
	}()
	if err := rcv.wait(ctx, done, 5*time.Minute); err != nil {
		return 0, err
	}
	rate := float64(n) / time.Since(start).Seconds()
	self, server := cpu.stop().per(n)
	logf("  ceiling: CPU per job %.0f µs here (River and receiver), %.0f µs in Postgres", self, server)
	return rate, nil
}

// receiver is a loopback HTTP server that verifies every webhook's signature and
// counts distinct webhook-ids for the current phase.
type receiver struct {
	server        *http.Server
	url           string
	secrets       atomic.Pointer[[]signing.Secret]
	badSignatures atomic.Int64

	mu     sync.Mutex
	seen   map[string]time.Time // webhook-id (and path, for per-path phases) → first verified receipt
	all    map[string]time.Time // webhook-id and path → first verified receipt, every path
	target int
	done   chan struct{}
	// byPath counts each path's copy of a webhook-id apart (one event to many
	// subscriptions); otherwise only the main path, /webhooks, counts.
	byPath bool
}

func startReceiver() (*receiver, error) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("receiver: %w", err)
	}
	rcv := &receiver{url: "http://" + listener.Addr().String() + "/webhooks"}
	rcv.server = &http.Server{Handler: http.HandlerFunc(rcv.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = rcv.server.Serve(listener) }()
	return rcv, nil
}

func (r *receiver) close() { _ = r.server.Close() }

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	received := time.Now()
	body, err := io.ReadAll(req.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	secrets := r.secrets.Load()
	if secrets == nil || signing.Verify(req.Header, body, *secrets, nil) != nil {
		r.badSignatures.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	id := req.Header.Get(signing.HeaderID)

	r.mu.Lock()
	if r.all != nil {
		key := id + " " + req.URL.Path
		if _, dup := r.all[key]; !dup {
			r.all[key] = received
		}
	}
	counted := r.byPath || req.URL.Path == "/webhooks"
	if r.byPath {
		id += " " + req.URL.Path
	}
	if r.seen != nil && counted {
		if _, dup := r.seen[id]; !dup {
			r.seen[id] = received
			if len(r.seen) == r.target {
				close(r.done)
			}
		}
	}
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// expect starts a phase that ends when n distinct webhook-ids have been verified
// on the main path.
func (r *receiver) expect(n int) <-chan struct{} {
	return r.expectPhase(n, false)
}

// expectPhase starts a phase; byPath counts each path's copy of a webhook-id.
func (r *receiver) expectPhase(n int, byPath bool) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byPath = byPath
	r.seen = make(map[string]time.Time, n)
	r.all = make(map[string]time.Time, n)
	r.target = n
	r.done = make(chan struct{})
	return r.done
}

func (r *receiver) wait(ctx context.Context, done <-chan struct{}, timeout time.Duration) error {
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(timeout):
		r.mu.Lock()
		defer r.mu.Unlock()
		return fmt.Errorf("only %d of %d webhooks arrived within %s", len(r.seen), r.target, timeout)
	}
}

// allReceipts counts the phase's deliveries on every path.
type allReceipts struct{ r *receiver }

func (r *receiver) countAll() allReceipts { return allReceipts{r} }

// since returns how many distinct deliveries (webhook-id and path) were
// verified from t on, and when the last was.
func (a allReceipts) since(t time.Time) (int, time.Time) {
	a.r.mu.Lock()
	defer a.r.mu.Unlock()
	var n int
	var last time.Time
	for _, at := range a.r.all {
		if !at.Before(t) {
			n++
			if at.After(last) {
				last = at
			}
		}
	}
	return n, last
}

// receipts returns when each webhook-id of the phase was first verified.
func (r *receiver) receipts() map[string]time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.seen)
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}
