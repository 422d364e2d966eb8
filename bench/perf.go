package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/jobs"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/letta"
	"github.com/outboxd/outboxd/outbox/letta/lettatest"
)

// This file holds the scenarios behind the performance goals: what publishing
// costs a producer against a floor, light traffic and an idle daemon, Poisson
// arrivals, and the highest rate the whole pipeline sustains on this machine.

// ---- producer cost against a floor ----

// floorRun is one producer variant: transactions per second over the run, and
// the mean time of one transaction.
type floorRun struct {
	tps  float64
	mean time.Duration
}

// producerCostResult compares, for one producer and for eight, the same business
// UPDATE with an INSERT into a bare table (the floor: identity key, type,
// payload, nothing else) and with the outbox INSERT, the way any SQL producer
// writes it; and Letta's step→SUCCESS write with and without outboxd's triggers.
type producerCostResult struct {
	floor1, outbox1 floorRun
	floor8, outbox8 floorRun
	lettaPlain      floorRun
	lettaTriggered  floorRun
}

// extraPerTxn is what the outbox costs one producer's transaction over the floor.
func (r *producerCostResult) extraPerTxn() time.Duration { return r.outbox1.mean - r.floor1.mean }

// ratio8 is eight producers' throughput with the outbox over the floor's.
func (r *producerCostResult) ratio8() float64 { return r.outbox8.tps / r.floor8.tps }

// lettaRatio is how much longer Letta's step write takes with the triggers.
func (r *producerCostResult) lettaRatio() float64 {
	return float64(r.lettaTriggered.mean) / float64(r.lettaPlain.mean)
}

const producerCostRounds = 3

// producerCost measures the floor and the outbox in alternating rounds (so that
// whatever else the machine does weighs on both alike), one producer and then
// eight, and keeps the best round of each, which is the least disturbed.
func producerCost(ctx context.Context, env *benchEnv, duration time.Duration) (*producerCostResult, error) {
	if _, err := env.pool.Exec(ctx, fmt.Sprintf(`
		CREATE TABLE %[1]s.floor (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, type text, payload jsonb)`, env.schema)); err != nil {
		return nil, fmt.Errorf("create floor table: %w", err)
	}
	floorTx := func(ctx context.Context, tx pgx.Tx, seq int) error {
		agent := fmt.Sprintf("agent-%d", seq%agentRows+1)
		if _, err := tx.Exec(ctx, "UPDATE "+env.schema+".agents SET step_count = step_count + 1, updated_at = now() WHERE id = $1", agent); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO "+env.schema+".floor (type, payload) VALUES ($1, $2)", "agent.step.completed", payload(seq))
		return err
	}
	outboxTx := func(ctx context.Context, tx pgx.Tx, seq int) error {
		agent := fmt.Sprintf("agent-%d", seq%agentRows+1)
		if _, err := tx.Exec(ctx, "UPDATE "+env.schema+".agents SET step_count = step_count + 1, updated_at = now() WHERE id = $1", agent); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO "+env.schema+".events (type, agent_id, organization_id, payload) VALUES ($1, $2, $3, $4)",
			"agent.step.completed", agent, "org-1", payload(seq))
		return err
	}
	res := &producerCostResult{}
	for _, clients := range []int{1, producerClients} {
		var floors, outboxes []floorRun
		for range producerCostRounds {
			f, err := transactionLoad(ctx, env.pool, clients, duration/producerCostRounds, floorTx)
			if err != nil {
				return nil, fmt.Errorf("floor: %w", err)
			}
			o, err := transactionLoad(ctx, env.pool, clients, duration/producerCostRounds, outboxTx)
			if err != nil {
				return nil, fmt.Errorf("outbox: %w", err)
			}
			floors, outboxes = append(floors, *f), append(outboxes, *o)
		}
		best := func(runs []floorRun) floorRun {
			return slices.MaxFunc(runs, func(a, b floorRun) int { return int(a.tps - b.tps) })
		}
		if clients == 1 {
			res.floor1, res.outbox1 = best(floors), best(outboxes)
		} else {
			res.floor8, res.outbox8 = best(floors), best(outboxes)
		}
	}
	plain, triggered, err := lettaStepCost(ctx, env, duration)
	if err != nil {
		return nil, fmt.Errorf("letta: %w", err)
	}
	res.lettaPlain, res.lettaTriggered = *plain, *triggered
	return res, nil
}

// transactionLoad runs fn in transactions back to back on clients connections
// for duration.
func transactionLoad(ctx context.Context, pool *pgxpool.Pool, clients int, duration time.Duration, fn func(context.Context, pgx.Tx, int) error) (*floorRun, error) {
	var done atomic.Int64
	var total atomic.Int64 // nanoseconds spent in transactions
	var firstErr error
	var mu sync.Mutex
	var seq atomic.Int64
	deadline := time.Now().Add(duration)
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := pool.Acquire(ctx)
			if err != nil {
				mu.Lock()
				firstErr = errors.Join(firstErr, err)
				mu.Unlock()
				return
			}
			defer conn.Release()
			for time.Now().Before(deadline) {
				began := time.Now()
				err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error { return fn(ctx, tx, int(seq.Add(1))) })
				if err != nil {
					mu.Lock()
					firstErr = errors.Join(firstErr, err)
					mu.Unlock()
					return
				}
				total.Add(int64(time.Since(began)))
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	n := done.Load()
	if n == 0 {
		return nil, errors.New("no transaction finished")
	}
	return &floorRun{tps: float64(n) / time.Since(start).Seconds(), mean: time.Duration(total.Load() / n)}, nil
}

// lettaStepCost times Letta's hottest write, a step becoming SUCCESS, one
// connection, each in its own transaction, in a copy of Letta's tables without
// and with outboxd's triggers (which then publish agent.step.completed).
func lettaStepCost(ctx context.Context, env *benchEnv, duration time.Duration) (plain, triggered *floorRun, err error) {
	run := func(withTriggers bool) (*floorRun, error) {
		lettaSchema := env.schema + "_letta"
		if withTriggers {
			lettaSchema += "_t"
		}
		if err := lettatest.Create(ctx, env.pool, lettaSchema); err != nil {
			return nil, err
		}
		defer func() { _, _ = env.pool.Exec(context.WithoutCancel(ctx), "DROP SCHEMA "+lettaSchema+" CASCADE") }()
		if withTriggers {
			if _, err := letta.Install(ctx, env.pool, &letta.Config{Schema: env.schema, LettaSchema: lettaSchema}); err != nil {
				return nil, err
			}
		}
		steps := int(duration.Seconds() * 5000)
		if _, err := env.pool.Exec(ctx, fmt.Sprintf(`
			INSERT INTO %[1]s.agents (id, name, organization_id) VALUES ('agent-1', 'a', 'org-1');
			INSERT INTO %[1]s.steps (id, agent_id, organization_id, model, status)
			SELECT 'step-' || g, 'agent-1', 'org-1', 'gpt-4o-mini', 'PENDING' FROM generate_series(1, %[2]d) AS g;
			ANALYZE %[1]s.steps;`, lettaSchema, steps)); err != nil {
			return nil, err
		}
		update := "UPDATE " + lettaSchema + ".steps SET status = 'SUCCESS', prompt_tokens = 1834, completion_tokens = 212, total_tokens = 2046, stop_reason = 'end_turn' WHERE id = $1"
		return transactionLoad(ctx, env.pool, 1, duration/2, func(ctx context.Context, tx pgx.Tx, seq int) error {
			if seq > steps {
				return errors.New("ran out of steps")
			}
			_, err := tx.Exec(ctx, update, fmt.Sprintf("step-%d", seq))
			return err
		})
	}
	if plain, err = run(false); err != nil {
		return nil, nil, err
	}
	if triggered, err = run(true); err != nil {
		return nil, nil, err
	}
	return plain, triggered, nil
}

// ---- light traffic and an idle daemon ----

// lightResult is the steady scenario at a low rate, polling alone, and the CPU
// an idle daemon uses.
type lightResult struct {
	steady *steadyResult
	// idleDaemon and idleServer are the share of one core an idle daemon (the
	// real `outboxd run` binary, its own process, default flags, no Redis) and
	// the Postgres backends it talks to used while no event came.
	idleDaemon, idleServer float64
}

const lightRate = 20

// idleSettle is how long an idle daemon runs before its CPU is measured: the
// start-up work (migrations check, leader election, River's first fetches and
// maintenance runs) is done by then.
const idleSettle = 5 * time.Second

func light(ctx context.Context, env *benchEnv, rcv *receiver, build *daemonBuild, databaseURL string, idle time.Duration) (*lightResult, error) {
	if err := subscribe(ctx, env, rcv); err != nil {
		return nil, err
	}
	s, err := steadyWith(ctx, env, rcv, &steadyConfig{rate: lightRate, duration: 20 * time.Second})
	if err != nil {
		return nil, err
	}
	// The idle figure is the binary users run, in its own process: measured
	// inside this one it would include the benchmark's own pool, receiver and
	// garbage collector.
	penv, err := newProcEnv(env, databaseURL)
	if err != nil {
		return nil, err
	}
	daemon, err := startDaemonProc(ctx, build, penv, "idle", &daemonOpts{})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := daemon.stop(); err != nil {
			logf("stop idle daemon: %v", err)
		}
	}()
	time.Sleep(idleSettle) //nolint:forbidigo // let the start-up work pass before measuring idle
	cpu := startCPU(env.pool.Config().ConnConfig.Database)
	before, _ := processCPU(daemon.pid())
	began := time.Now()
	time.Sleep(idle) //nolint:forbidigo // measuring what the daemon does while nothing happens
	after, ok := processCPU(daemon.pid())
	use := cpu.stop()
	elapsed := time.Since(began)
	if !ok {
		return nil, fmt.Errorf("idle daemon exited:\n%s", daemon.logTail(20))
	}
	return &lightResult{
		steady:     s,
		idleDaemon: (after - before).Seconds() / elapsed.Seconds(),
		idleServer: use.server.Seconds() / elapsed.Seconds(),
	}, nil
}

// ---- Poisson arrivals ----

// poissonResult is commit→receipt latency when producers commit at random
// (exponentially distributed gaps between commits, as pgbench -R schedules
// them), one INSERT per transaction.
type poissonResult struct {
	rate    int
	latency *steadyResult
}

const poissonClients = 4

func poisson(ctx context.Context, env *benchEnv, rcv *receiver, rate int, duration time.Duration) (*steadyResult, error) {
	if err := subscribe(ctx, env, rcv); err != nil {
		return nil, err
	}
	return paced(ctx, env, rcv, &pacedConfig{rate: rate, duration: duration, clients: poissonClients, poisson: true, insertOnly: true, subscriptions: 1})
}

// ---- capacity ----

// capacityStep is one offered rate of the capacity scenario.
type capacityStep struct {
	offered   int
	result    *steadyResult
	sustained bool
}

// capacityResult is the highest offered rate that was sustained: commits and
// deliveries kept up (within 3 %) and commit→receipt p99 stayed within 250 ms.
type capacityResult struct {
	fanout int
	steps  []capacityStep
	best   int // events/s
}

const (
	capacityP99      = 250 * time.Millisecond
	capacityKeepUp   = 0.97
	capacityClients  = 16
	capacityDuration = 12 * time.Second
)

func capacity(ctx context.Context, pool *pgxpool.Pool, rcv *receiver, fanoutN int, rates []int) (*capacityResult, error) {
	res := &capacityResult{fanout: fanoutN}
	for _, rate := range rates {
		var step capacityStep
		_, err := withSchema(ctx, pool, func(env *benchEnv) (float64, error) {
			if err := subscribeMany(ctx, env, rcv, fanoutN); err != nil {
				return 0, err
			}
			r, err := paced(ctx, env, rcv, &pacedConfig{rate: rate, duration: capacityDuration, clients: capacityClients, subscriptions: fanoutN})
			if err != nil {
				return 0, err
			}
			step = capacityStep{offered: rate, result: r}
			return 0, nil
		})
		if err != nil {
			logf("  capacity ×%d at %d events/s: %v", fanoutN, rate, err)
			step = capacityStep{offered: rate}
		} else {
			r := step.result
			step.sustained = r.publishedPerSec >= capacityKeepUp*float64(rate) &&
				r.deliveredPerSec >= capacityKeepUp*float64(rate*fanoutN) && r.p99 <= capacityP99
			logf("  capacity ×%d at %d events/s: %.0f committed/s, %.0f deliveries/s, p50 %s p99 %s: sustained %v",
				fanoutN, rate, r.publishedPerSec, r.deliveredPerSec, ms(r.p50), ms(r.p99), step.sustained)
		}
		res.steps = append(res.steps, step)
		if !step.sustained {
			break
		}
		res.best = rate
	}
	return res, nil
}

// subscribeMany points n subscriptions for every event at the receiver, each at
// its own path (the receiver counts one path's copies: the first subscription's).
func subscribeMany(ctx context.Context, env *benchEnv, rcv *receiver, n int) error {
	if err := subscribe(ctx, env, rcv); err != nil {
		return err
	}
	secrets := *rcv.secrets.Load()
	for i := 1; i < n; i++ {
		sub, err := env.store.SubscriptionCreate(ctx, &outbox.SubscriptionCreateParams{URL: fmt.Sprintf("%s/%d", rcv.url, i), EventTypes: []string{"*"}})
		if err != nil {
			return fmt.Errorf("subscribe: %w", err)
		}
		secrets = append(secrets, sub.Secret)
	}
	rcv.secrets.Store(&secrets)
	return nil
}

// ---- paced producers ----

// pacedConfig is a load of producers committing at rate events/s between them.
type pacedConfig struct {
	rate     int
	duration time.Duration
	clients  int
	// poisson spaces each producer's commits by exponentially distributed gaps
	// (random arrivals) rather than evenly.
	poisson bool
	// insertOnly publishes with a plain INSERT per transaction, as pgbench -f
	// insert.sql does; otherwise each transaction is an UPDATE of an agent row
	// and the INSERT.
	insertOnly bool
	// subscriptions is how many subscriptions receive each event (deliveries
	// per event); all are counted for the delivered rate.
	subscriptions int
}

// paced runs producers at a fixed or Poisson rate while a default daemon
// delivers, and measures commit→receipt on the main path plus the delivered
// rate over every path.
func paced(ctx context.Context, env *benchEnv, rcv *receiver, cfg *pacedConfig) (*steadyResult, error) {
	daemon, err := jobs.NewDaemon(env.pool, &jobs.Config{Store: env.store, Guard: loopbackGuard()})
	if err != nil {
		return nil, err
	}
	if err := daemon.Start(ctx); err != nil {
		return nil, fmt.Errorf("start daemon: %w", err)
	}
	defer stopDaemon(ctx, daemon)

	total := int(float64(cfg.rate) * (warmup + cfg.duration).Seconds())
	perClient := total / cfg.clients
	total = perClient * cfg.clients
	commits := &sync.Map{}
	done := rcv.expect(total)
	all := rcv.countAll()
	mean := time.Duration(float64(time.Second) * float64(cfg.clients) / float64(cfg.rate))
	start := time.Now()
	measureFrom := start.Add(warmup)
	errs := make(chan error, cfg.clients)
	var wg sync.WaitGroup
	for c := range cfg.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			random := rand.New(rand.NewPCG(uint64(c), uint64(cfg.rate))) //nolint:gosec // arrival times, not secrets
			due := start.Add(time.Duration(c) * mean / time.Duration(cfg.clients))
			for i := range perClient {
				if cfg.poisson {
					due = due.Add(time.Duration(random.ExpFloat64() * float64(mean)))
				} else if i > 0 {
					due = due.Add(mean)
				}
				if wait := time.Until(due); wait > 0 {
					select {
					case <-time.After(wait):
					case <-ctx.Done():
						errs <- ctx.Err()
						return
					}
				}
				seq := i*cfg.clients + c
				var id string
				var err error
				if cfg.insertOnly {
					id, err = publishInsert(ctx, env, seq)
				} else {
					id, err = publishWithUpdate(ctx, env, seq)
				}
				if err != nil {
					errs <- err
					return
				}
				if committed := time.Now(); committed.After(measureFrom) {
					commits.Store(id, committed)
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
	received := rcv.receipts()
	r, err := latencies(commits, received, measureFrom)
	if err != nil {
		return nil, err
	}
	if r.legs, r.slowLegs, err = stageTrace(ctx, env, commits, received, start); err != nil {
		return nil, err
	}
	// Deliveries over every path, from the end of the warm-up to the last.
	delivered, last := all.since(measureFrom)
	if delivered > 0 {
		r.deliveredPerSec = float64(delivered) / last.Sub(measureFrom).Seconds()
	}
	return r, nil
}

// publishInsert is a producer that publishes with one INSERT per transaction.
func publishInsert(ctx context.Context, env *benchEnv, seq int) (string, error) {
	event, err := env.store.Publish(ctx, &outbox.PublishParams{
		Type: "agent.step.completed", AgentID: fmt.Sprintf("agent-%d", seq%agentRows+1), OrganizationID: "org-1",
		Payload: json.RawMessage(payload(seq)),
	})
	if err != nil {
		return "", err
	}
	return event.ID, nil
}

// latencies computes the steady result from commit times and receipt times:
// rates over the measured window, from its start to the last commit and to the
// last receipt.
func latencies(commits *sync.Map, received map[string]time.Time, measureFrom time.Time) (*steadyResult, error) {
	var lastCommit, lastReceipt time.Time
	var values []time.Duration
	commits.Range(func(key, value any) bool {
		committed := value.(time.Time) //nolint:forcetypeassert // only times are stored
		at := received[key.(string)]   //nolint:forcetypeassert // only ids are stored
		values = append(values, at.Sub(committed))
		if committed.After(lastCommit) {
			lastCommit = committed
		}
		if at.After(lastReceipt) {
			lastReceipt = at
		}
		return true
	})
	if len(values) == 0 {
		return nil, errors.New("no event was committed after the warm-up")
	}
	slices.Sort(values)
	return &steadyResult{
		publishedPerSec: float64(len(values)) / lastCommit.Sub(measureFrom).Seconds(),
		deliveredPerSec: float64(len(values)) / lastReceipt.Sub(measureFrom).Seconds(),
		p50:             percentile(values, 0.50),
		p99:             percentile(values, 0.99),
		max:             values[len(values)-1],
	}, nil
}

// ---- running and reporting ----

// perfResults are the goal scenarios' figures, one entry per run.
type perfResults struct {
	cost      []*producerCostResult
	light     []*lightResult
	poisson   map[int][]*steadyResult // by rate
	capacity1 []*capacityResult
	capacity3 []*capacityResult
}

// poissonRates are the rates of the Poisson scenario.
var poissonRates = []int{400, 1000}

var (
	capacityRates1 = []int{1000, 1500, 2000, 2500, 3000, 3500, 4000}
	capacityRates3 = []int{700, 1000, 1200, 1350, 1500, 1700, 2000}
)

func runPerf(ctx context.Context, pool *pgxpool.Pool, rcv *receiver, opts *options, res *results) error {
	p := &res.perf
	if opts.scenarios["cost"] {
		_, err := withSchema(ctx, pool, func(env *benchEnv) (float64, error) {
			c, err := producerCost(ctx, env, opts.producerTime)
			if err != nil {
				return 0, err
			}
			p.cost = append(p.cost, c)
			logf("  cost: one producer +%.3f ms per transaction over the floor (%s vs %s); eight %.2f× the floor's TPS; Letta step write %.2f× with the triggers",
				toMillis(c.extraPerTxn()), ms(c.outbox1.mean), ms(c.floor1.mean), c.ratio8(), c.lettaRatio())
			return 0, nil
		})
		if err != nil {
			return fmt.Errorf("cost: %w", err)
		}
	}
	if opts.scenarios["light"] {
		build, err := buildDaemon(ctx)
		if err != nil {
			return fmt.Errorf("light: %w", err)
		}
		defer build.remove()
		_, err = withSchema(ctx, pool, func(env *benchEnv) (float64, error) {
			l, err := light(ctx, env, rcv, build, opts.databaseURL, opts.idleTime)
			if err != nil {
				return 0, err
			}
			p.light = append(p.light, l)
			logf("  light: %d events/s p50 %s p99 %s; idle daemon %.2f%% of a core, its Postgres backends %.2f%%",
				lightRate, ms(l.steady.p50), ms(l.steady.p99), 100*l.idleDaemon, 100*l.idleServer)
			return 0, nil
		})
		if err != nil {
			return fmt.Errorf("light: %w", err)
		}
	}
	if opts.scenarios["poisson"] {
		if p.poisson == nil {
			p.poisson = map[int][]*steadyResult{}
		}
		for _, rate := range poissonRates {
			_, err := withSchema(ctx, pool, func(env *benchEnv) (float64, error) {
				r, err := poisson(ctx, env, rcv, rate, opts.steadyDuration)
				if err != nil {
					return 0, err
				}
				p.poisson[rate] = append(p.poisson[rate], r)
				logf("  poisson: %d events/s offered, %.0f committed/s, p50 %s p99 %s max %s", rate, r.publishedPerSec, ms(r.p50), ms(r.p99), ms(r.max))
				logf("    median legs: %s; slowest 1%%: %s", r.legs, r.slowLegs)
				return 0, nil
			})
			if err != nil {
				return fmt.Errorf("poisson %d: %w", rate, err)
			}
		}
	}
	if opts.scenarios["capacity"] {
		c1, err := capacity(ctx, pool, rcv, 1, capacityRates1)
		if err != nil {
			return fmt.Errorf("capacity: %w", err)
		}
		c3, err := capacity(ctx, pool, rcv, 3, capacityRates3)
		if err != nil {
			return fmt.Errorf("capacity: %w", err)
		}
		p.capacity1, p.capacity3 = append(p.capacity1, c1), append(p.capacity3, c3)
		logf("  capacity: %d events/s sustained at fan-out 1; %d events/s (%d deliveries/s) at fan-out 3", c1.best, c3.best, 3*c3.best)
	}
	return nil
}

// goal is one line of the goals table.
type goal struct {
	name, target, measured string
	met                    bool
}

// goals turns the runs' figures into the goals table: each goal's target and
// the median (min–max) of the runs, with the drain ratio from the main results.
func (r *results) goals() []goal {
	var out []goal
	add := func(name, target string, s spread, format func(spread) string, met bool) {
		out = append(out, goal{name: name, target: target, measured: format(s), met: met})
	}
	plus := func(s spread) string { return fmt.Sprintf("+%.3f (%.3f–%.3f)", s.median, s.min, s.max) }
	percent := func(s spread) string { return fmt.Sprintf("%.2f %% (%.2f–%.2f)", s.median, s.min, s.max) }
	p := &r.perf
	if len(p.cost) > 0 {
		extra := collect(p.cost, func(c *producerCostResult) float64 { return toMillis(c.extraPerTxn()) })
		add("one producer: time per transaction over the floor, ms", "≤ +0.10", extra, plus, extra.median <= 0.10)
		ratio := collect(p.cost, func(c *producerCostResult) float64 { return c.ratio8() })
		add("eight producers: transactions/s ÷ the floor's", "≥ 0.95", ratio, spread.ratio, ratio.median >= 0.95)
		lettaRatio := collect(p.cost, func(c *producerCostResult) float64 { return c.lettaRatio() })
		add("Letta step→SUCCESS write: time with the triggers ÷ without", "≤ 1.40", lettaRatio, spread.ratio, lettaRatio.median <= 1.40)
	}
	if len(r.drain) > 0 && len(r.drain) == len(r.ceiling) {
		ratios := make([]float64, len(r.drain))
		for i := range r.drain {
			ratios[i] = r.drain[i] / r.ceiling[i]
		}
		s := spreadOf(ratios)
		add("backlog drain ÷ River alone", "≥ 0.80", s, spread.ratio, s.median >= 0.80)
	}
	if len(p.light) > 0 {
		p50 := collect(p.light, func(l *lightResult) float64 { return toMillis(l.steady.p50) })
		add(fmt.Sprintf("%d events/s without Redis: commit → receipt p50, ms", lightRate), "≤ 15", p50, spread.millis, p50.median <= 15)
		idle := collect(p.light, func(l *lightResult) float64 { return 100 * l.idleDaemon })
		add("idle daemon: CPU, % of one core", "≤ 1 %", idle, percent, idle.median <= 1)
	}
	for _, rate := range poissonRates {
		if runs := p.poisson[rate]; len(runs) > 0 {
			p99 := collect(runs, func(s *steadyResult) float64 { return toMillis(s.p99) })
			add(fmt.Sprintf("Poisson arrivals, %s events/s: commit → receipt p99, ms", thousands(float64(rate))), "≤ 50", p99, spread.millis, p99.median <= 50)
		}
	}
	if len(p.capacity1) > 0 {
		c1 := collect(p.capacity1, func(c *capacityResult) float64 { return float64(c.best) })
		add("capacity at fan-out 1 (p99 ≤ 250 ms): events/s", "≥ 2,500", c1, spread.count, c1.median >= 2500)
		c3 := collect(p.capacity3, func(c *capacityResult) float64 { return float64(3 * c.best) })
		add("capacity at fan-out 3 (p99 ≤ 250 ms): deliveries/s", "≥ 4,000", c3, spread.count, c3.median >= 4000)
	}
	return out
}

// perfNotes writes the goal scenarios' details under the goals table.
func (r *results) perfNotes(opts *options, w func(string, ...any)) {
	p := &r.perf
	if len(p.cost) > 0 {
		w("- **Producer cost**: the same transaction, an `UPDATE` of an agent row and an `INSERT`, against")
		w("  a floor whose `INSERT` goes to a bare table (identity key, `type text`, `payload jsonb`) and")
		w("  against `outbox.events` (a plain SQL `INSERT`, as any producer writes it), back to back, floor")
		w("  and outbox alternating in %d rounds, the best round of each kept. One producer: mean time per", producerCostRounds)
		w("  transaction, floor %s ms, outbox %s ms.",
			collect(p.cost, func(c *producerCostResult) float64 { return toMillis(c.floor1.mean) }).millis3(),
			collect(p.cost, func(c *producerCostResult) float64 { return toMillis(c.outbox1.mean) }).millis3())
		w("  Eight producers: floor %s, outbox %s transactions/s. Letta: a step becoming `SUCCESS`, one",
			collect(p.cost, func(c *producerCostResult) float64 { return c.floor8.tps }).count(),
			collect(p.cost, func(c *producerCostResult) float64 { return c.outbox8.tps }).count())
		w("  transaction each, in a copy of Letta's tables: %s ms without outboxd's triggers, %s ms with them.",
			collect(p.cost, func(c *producerCostResult) float64 { return toMillis(c.lettaPlain.mean) }).millis3(),
			collect(p.cost, func(c *producerCostResult) float64 { return toMillis(c.lettaTriggered.mean) }).millis3())
	}
	if len(p.light) > 0 {
		w("- **Light traffic**: %d events/s, paced, for 20 s, polling alone (no Redis, no `outbox.wake()`);", lightRate)
		w("  p99 %s ms. **Idle**: `outboxd run` with default flags and no Redis, built from this tree and", collect(p.light, func(l *lightResult) float64 { return toMillis(l.steady.p99) }).millis())
		w("  started as its own process with nothing to do; its CPU over %s after %s of start-up (relay", opts.idleTime, idleSettle)
		w("  polls, River's fetch polls, heartbeats), from `/proc/<pid>/stat`; the Postgres backends serving it used %s %% of a core.",
			collect(p.light, func(l *lightResult) float64 { return 100 * l.idleServer }).ratio())
	}
	if len(p.poisson) > 0 {
		w("- **Poisson arrivals**: %d producers, each committing one `INSERT` per transaction at random", poissonClients)
		w("  (exponential gaps, as `pgbench -R` schedules them), %s events/s between them in all.", "the rate")
		for _, rate := range poissonRates {
			runs := p.poisson[rate]
			if len(runs) == 0 {
				continue
			}
			w("  At %s events/s: p50 %s ms, p99 %s ms, max %s ms.", thousands(float64(rate)),
				collect(runs, func(s *steadyResult) float64 { return toMillis(s.p50) }).millis(),
				collect(runs, func(s *steadyResult) float64 { return toMillis(s.p99) }).millis(),
				collect(runs, func(s *steadyResult) float64 { return toMillis(s.max) }).millis())
			last := runs[len(runs)-1]
			w("  Where the time went (last run, medians, from the job's `created_at` and `attempted_at`): every")
			w("  event: %s; the slowest 1 %%: %s.", last.legs, last.slowLegs)
		}
	}
	if len(p.capacity1) > 0 {
		w("- **Capacity**: %d producers, each transaction an `UPDATE` and the outbox `INSERT`, at rising", capacityClients)
		w("  offered rates (%s s each after a warm-up); a rate is sustained when commits and deliveries keep", capacityDuration.String())
		w("  up within %.0f %% and commit → receipt p99 stays within %s. The last run's steps:", 100*(1-capacityKeepUp), capacityP99)
		for _, c := range []*capacityResult{p.capacity1[len(p.capacity1)-1], p.capacity3[len(p.capacity3)-1]} {
			for _, step := range c.steps {
				if step.result == nil {
					w("  fan-out %d, %s events/s: failed", c.fanout, thousands(float64(step.offered)))
					continue
				}
				w("  fan-out %d, %s events/s offered: %s committed/s, %s deliveries/s, p50 %.1f ms, p99 %.1f ms%s.",
					c.fanout, thousands(float64(step.offered)), thousands(step.result.publishedPerSec), thousands(step.result.deliveredPerSec),
					toMillis(step.result.p50), toMillis(step.result.p99), map[bool]string{true: "", false: " (not sustained)"}[step.sustained])
			}
		}
	}
	w("")
}

func (s spread) millis3() string {
	return fmt.Sprintf("%.3f (%.3f–%.3f)", s.median, s.min, s.max)
}

// ---- where the time goes ----

// stages splits commit→receipt into its legs, from the clocks Postgres kept:
// the relay's claim (commit → the delivery job's created_at, which is the claim
// transaction's start), River's fetch (created_at → attempted_at) and the
// attempt (attempted_at → receipt: load the target, sign, POST). When the
// server keeps commit timestamps (track_commit_timestamp), commit is the claim
// transaction's own time, from its start to its commit (read from the claimed
// event's row), and fetch starts at that commit.
type stages struct {
	claim, commit, fetch, attempt time.Duration
	// committed tells whether commit was measured.
	committed bool
}

func (s stages) String() string {
	if s.committed {
		return fmt.Sprintf("claim %s, its commit %s, fetch %s, attempt %s", ms(s.claim), ms(s.commit), ms(s.fetch), ms(s.attempt))
	}
	return fmt.Sprintf("claim %s, fetch %s, attempt %s", ms(s.claim), ms(s.fetch), ms(s.attempt))
}

// stageTrace returns the median legs over every measured event and over the
// slowest 1 %, so a tail can be pinned on the relay, River's fetch or the POST.
func stageTrace(ctx context.Context, env *benchEnv, commits *sync.Map, received map[string]time.Time, since time.Time) (all, slowest stages, err error) {
	var tracked bool
	if err := env.pool.QueryRow(ctx, "SELECT current_setting('track_commit_timestamp') = 'on'").Scan(&tracked); err != nil {
		return all, slowest, fmt.Errorf("trace stages: %w", err)
	}
	query := fmt.Sprintf(`SELECT j.args->>'event_id', j.created_at, j.attempted_at, NULL::timestamptz
		FROM %s.river_job AS j WHERE j.kind = $1 AND j.attempted_at IS NOT NULL AND j.created_at >= $2`, env.schema)
	if tracked {
		// The claim sets the event's dispatched_at, so the event row's xmin is the
		// claim's transaction.
		query = fmt.Sprintf(`SELECT j.args->>'event_id', j.created_at, j.attempted_at, pg_xact_commit_timestamp(e.xmin)
			FROM %[1]s.river_job AS j
			CROSS JOIN LATERAL (SELECT %[1]s.event_seq(j.args->>'event_id') AS seq, %[1]s.event_time(j.args->>'event_id') AS at OFFSET 0) AS k
			LEFT JOIN %[1]s.events AS e ON e.id = k.seq AND e.created_at >= k.at AND e.created_at < k.at + interval '1 millisecond'
			WHERE j.kind = $1 AND j.attempted_at IS NOT NULL AND j.created_at >= $2`, env.schema)
	}
	rows, err := env.pool.Query(ctx, query, jobs.KindDelivery, since)
	if err != nil {
		return all, slowest, fmt.Errorf("trace stages: %w", err)
	}
	type trace struct {
		total time.Duration
		legs  stages
	}
	var traces []trace
	for rows.Next() {
		var id string
		var created, attempted time.Time
		var claimCommitted *time.Time
		if err := rows.Scan(&id, &created, &attempted, &claimCommitted); err != nil {
			return all, slowest, fmt.Errorf("trace stages: %w", err)
		}
		c, ok := commits.Load(id)
		if !ok {
			continue
		}
		committed := c.(time.Time) //nolint:forcetypeassert // only times are stored
		at, ok := received[id]
		if !ok {
			continue
		}
		legs := stages{claim: created.Sub(committed), fetch: attempted.Sub(created), attempt: at.Sub(attempted)}
		if claimCommitted != nil {
			legs.committed = true
			legs.commit, legs.fetch = claimCommitted.Sub(created), attempted.Sub(*claimCommitted)
		}
		traces = append(traces, trace{total: at.Sub(committed), legs: legs})
	}
	if err := rows.Err(); err != nil {
		return all, slowest, fmt.Errorf("trace stages: %w", err)
	}
	if len(traces) == 0 {
		return all, slowest, errors.New("trace stages: no delivery matched a measured event")
	}
	median := func(ts []trace) stages {
		pick := func(f func(trace) time.Duration) time.Duration {
			v := make([]time.Duration, len(ts))
			for i, t := range ts {
				v[i] = f(t)
			}
			slices.Sort(v)
			return percentile(v, 0.5)
		}
		return stages{
			claim:     pick(func(t trace) time.Duration { return t.legs.claim }),
			commit:    pick(func(t trace) time.Duration { return t.legs.commit }),
			fetch:     pick(func(t trace) time.Duration { return t.legs.fetch }),
			attempt:   pick(func(t trace) time.Duration { return t.legs.attempt }),
			committed: tracked,
		}
	}
	slices.SortFunc(traces, func(a, b trace) int { return cmp.Compare(a.total, b.total) })
	return median(traces), median(traces[len(traces)*99/100:]), nil
}
