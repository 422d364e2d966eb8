package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/jobs"
	"github.com/outboxd/outboxd/outbox/signing"
)

// The scale scenario (go run ./bench -scenario scale -hours H -rate R): an empty
// schema and one filled with H hours of history at R events/s side by side, the
// same measurements alternating between them so that noise on a shared machine
// hits both alike, each figure printed beside its empty-schema figure as a ratio.

// scaleTargets are issue 11's targets at the default size.
const (
	scaleSteadyTarget  = 1.25 // filled ÷ empty steady p99 and drain time
	scaleHistoryTarget = 50 * time.Millisecond
	scalePruneTarget   = 3.0 // rows pruned per second ÷ events arriving per second
	scaleLockTarget    = 100 * time.Millisecond
	// scaleOldPartitionRows is at most how many events the partition past the
	// retention holds that the retention pass drops.
	scaleOldPartitionRows = 1_000_000
	// scalePruneShare is the share of the filled span whose completed jobs the
	// retention pass's cleaner deletes: the oldest tenth, as when the delivered
	// retention ends for history that built up at the filled rate.
	scalePruneShare = 0.1
	// lockSample is how often the retention pass looks for sessions waiting
	// for a lock; a wait counts from the first look that sees it, plus this.
	lockSample = 10 * time.Millisecond
)

type scaleRun struct {
	steady *steadyResult
	drain  float64
	// cpu is the drain's CPU per delivery, µs: this process (daemon, receiver)
	// and the Postgres server.
	cpuSelf, cpuServer float64
}

type retentionResult struct {
	keep            time.Duration // the delivered retention the daemon ran with
	completedPruned int64
	pruneRate       float64 // River's cleaner, deliveries and fan-out jobs deleted per second
	pruneTook       time.Duration
	partitionRows   int64
	dropTook        time.Duration
	longestLockWait time.Duration       // longest any other session (producers, the daemon) waited for a lock during the pass
	lockWaits       map[string]lockWait // the longest of those by kind of lock (pg_stat_activity.wait_event)
	retentionWait   time.Duration       // longest the retention job's own detach waited for outbox.events' lock
	steady          *steadyResult       // the load that ran meanwhile
	unfinished      bool                // the cleaner had not finished when the load ended
}

type scaleResult struct {
	spec                fillSpec
	fill                *fillStats
	empty, full         []scaleRun
	history             []historyResult
	retention           *retentionResult
	eventsSize, jobSize relationSizes
	jobRows             int64
}

func runScale(ctx context.Context, pool *pgxpool.Pool, rcv *receiver, opts *options) (*scaleResult, error) {
	res := &scaleResult{spec: fillSpec{hours: opts.hours, rate: opts.rate}}
	logf("scale: %g hours at %s events/s (%s events), measured %d times beside an empty schema", opts.hours, thousands(float64(opts.rate)),
		thousands(float64(res.spec.events())), opts.runs)
	_, err := withSchema(ctx, pool, func(empty *benchEnv) (float64, error) {
		emptySecret, err := subscribeSecret(ctx, empty, rcv)
		if err != nil {
			return 0, err
		}
		return withSchema(ctx, pool, func(full *benchEnv) (float64, error) {
			if res.fill, err = fill(ctx, full, res.spec); err != nil {
				return 0, err
			}
			if res.eventsSize, res.jobSize, err = tableSizes(ctx, full); err != nil {
				return 0, err
			}
			if err := full.pool.QueryRow(ctx, "SELECT count(*) FROM "+full.schema+".river_job").Scan(&res.jobRows); err != nil {
				return 0, err
			}
			logf("  scale: events %s heap + %s indexes, river_job %s heap + %s indexes", bytesText(res.eventsSize.heap), bytesText(res.eventsSize.indexes),
				bytesText(res.jobSize.heap), bytesText(res.jobSize.indexes))
			// The history first, on the filled state alone (the runs below add
			// deliveries of another type to the newest end).
			if res.history, err = historyQueries(ctx, full); err != nil {
				return 0, err
			}
			fullSecret, err := subscribeSecret(ctx, full, rcv)
			if err != nil {
				return 0, err
			}
			for i := 1; i <= opts.runs; i++ {
				for _, side := range []struct {
					name   string
					env    *benchEnv
					secret signing.Secret
					runs   *[]scaleRun
				}{{"empty", empty, emptySecret, &res.empty}, {"filled", full, fullSecret, &res.full}} {
					rcv.secrets.Store(&[]signing.Secret{side.secret})
					s, err := steadyWith(ctx, side.env, rcv, &steadyConfig{rate: opts.steadyRate, duration: opts.steadyDuration})
					if err != nil {
						return 0, fmt.Errorf("steady, %s: %w", side.name, err)
					}
					cpu := startCPU(side.env.pool.Config().ConnConfig.Database)
					rate, err := drainExisting(ctx, side.env, rcv, opts.drainEvents)
					if err != nil {
						return 0, fmt.Errorf("drain, %s: %w", side.name, err)
					}
					self, server := cpu.stop().per(opts.drainEvents)
					*side.runs = append(*side.runs, scaleRun{steady: s, drain: rate, cpuSelf: self, cpuServer: server})
					logf("  scale %d, %s: steady p50 %s p99 %s (median legs: %s; slowest 1%%: %s); drain %.0f deliveries/s",
						i, side.name, ms(s.p50), ms(s.p99), s.legs, s.slowLegs, rate)
				}
			}
			rcv.secrets.Store(&[]signing.Secret{fullSecret})
			res.retention, err = retentionPass(ctx, full, rcv, opts)
			return 0, err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("scale: %w", err)
	}
	return res, nil
}

// subscribeSecret points one subscription for every event at the receiver and
// returns its secret.
func subscribeSecret(ctx context.Context, env *benchEnv, rcv *receiver) (signing.Secret, error) {
	if err := subscribe(ctx, env, rcv); err != nil {
		return signing.Secret{}, err
	}
	return (*rcv.secrets.Load())[0], nil
}

// drainExisting is the drain scenario in a schema that already has its
// subscription: n events committed, then the daemon started; deliveries/s to the
// last verified receipt.
func drainExisting(ctx context.Context, env *benchEnv, rcv *receiver, n int) (float64, error) {
	if _, err := env.pool.Exec(ctx, fmt.Sprintf(`
		INSERT INTO %[1]s.events (type, agent_id, organization_id, payload)
		SELECT 'agent.step.completed', 'agent-' || (g %% %[3]d + 1), 'org-1',
		       jsonb_build_object('step_id', 'step-' || g, 'run_id', 'run-' || g / 10, 'model', 'gpt-4o-mini',
		                          'stop_reason', 'end_turn', 'usage', jsonb_build_object('prompt_tokens', 1834, 'completion_tokens', 212))
		FROM generate_series(1, %[2]d) AS g`, env.schema, n, agentRows)); err != nil {
		return 0, fmt.Errorf("insert backlog: %w", err)
	}
	done := rcv.expect(n)
	start := time.Now()
	daemon, err := startDaemon(ctx, env)
	if err != nil {
		return 0, err
	}
	defer stopDaemon(ctx, daemon)
	if err := rcv.wait(ctx, done, 5*time.Minute); err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// retentionPass runs one retention pass under the steady load: the daemon starts
// with a delivered retention that ends within the filled span, so River's
// cleaner deletes the oldest scalePruneShare of the completed jobs (how long the
// fill and the runs before took does not change how many), and with a
// partition of events past the
// (default, 7-day) event retention, which outboxd's retention job drops. It
// measures the cleaner's rows per second, the drop's duration, the longest lock
// wait any session of the database saw, and the load's latency meanwhile.
func retentionPass(ctx context.Context, env *benchEnv, rcv *receiver, opts *options) (*retentionResult, error) {
	res := &retentionResult{}
	s := env.schema
	var horizon time.Time
	var keepSeconds float64
	if err := env.pool.QueryRow(ctx, fmt.Sprintf(`SELECT h, extract(epoch FROM now() - h)::float8
		FROM (SELECT min(finalized_at) + make_interval(secs => $1) AS h FROM %s.river_job WHERE state = 'completed') AS o`, s),
		opts.hours*3600*scalePruneShare).Scan(&horizon, &keepSeconds); err != nil {
		return nil, fmt.Errorf("retention horizon: %w", err)
	}
	keep := time.Duration(keepSeconds * float64(time.Second))
	res.keep = keep
	if err := env.pool.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %s.river_job WHERE state = 'completed' AND finalized_at < $1`, s), horizon).
		Scan(&res.completedPruned); err != nil {
		return nil, err
	}

	// A partition of a month ago, as the oldest day is when its retention ends.
	err := pgx.BeginFunc(ctx, env.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf("SELECT %s.events_partition_create(now() - interval '30 days')", s)); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, fmt.Sprintf(`
			INSERT INTO %[1]s.events (id, type, organization_id, agent_id, payload, created_at, dispatched_at, fanned_out_at)
			OVERRIDING SYSTEM VALUE
			SELECT e.id, e.type, e.organization_id, e.agent_id, e.payload, e.created_at - interval '30 days',
			       e.dispatched_at - interval '30 days', e.fanned_out_at - interval '30 days'
			FROM %[1]s.events AS e ORDER BY e.id LIMIT %[2]d`, s, scaleOldPartitionRows))
		res.partitionRows = tag.RowsAffected()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("old partition: %w", err)
	}
	if _, err := env.pool.Exec(ctx, fmt.Sprintf("VACUUM ANALYZE %s.events", s)); err != nil {
		return nil, err
	}
	var oldPartition string
	if err := env.pool.QueryRow(ctx, fmt.Sprintf("SELECT name FROM %s.events_partitions() WHERE from_time IS NOT NULL ORDER BY from_time LIMIT 1", s)).Scan(&oldPartition); err != nil {
		return nil, err
	}
	logf("  retention: %s completed jobs past a %s retention, partition %s of %s events past 7 days", thousands(float64(res.completedPruned)),
		keep.Round(time.Second), oldPartition, thousands(float64(res.partitionRows)))

	drops := &dropRecorder{}
	watch, stopWatch := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var longest atomic.Int64
	var waitsMu sync.Mutex
	waits := map[string]lockWait{}
	var cleanerStart, cleanerEnd atomic.Int64 // unix nanos
	cleanerDone := make(chan struct{})
	wg.Add(2)
	var retentionWait atomic.Int64
	go func() { // lock waits, by kind (relation, extend, tuple, transactionid, …)
		defer wg.Done()
		// A wait is timed from the first sample that sees a statement waiting to
		// the last, every lockSample: pg_stat_activity tells when a statement
		// began, not when it began to wait. The retention job's own detach is
		// kept apart: it waits so that no one else waits long.
		type statement struct {
			pid   int32
			start time.Time
		}
		type wait struct {
			first, last time.Time
			kind        string
			retention   bool
		}
		seen := map[statement]*wait{}
		for watch.Err() == nil {
			rows, err := env.pool.Query(watch, `SELECT a.pid, a.query_start, a.wait_event, a.query LIKE '%events_partition_detach%',
					left(regexp_replace(a.query, '^(\s*--[^\n]*\n)+', ''), 60),
					coalesce((SELECT left(regexp_replace(b.query, '^(\s*--[^\n]*\n)+', ''), 60) FROM pg_stat_activity AS b WHERE b.pid = (pg_blocking_pids(a.pid))[1]), '')
				FROM pg_stat_activity AS a
				WHERE a.datname = current_database() AND a.wait_event_type = 'Lock' AND a.pid <> pg_backend_pid()`)
			now := time.Now()
			if err == nil {
				for rows.Next() {
					var st statement
					var kind, query, blocker string
					var retention bool
					if rows.Scan(&st.pid, &st.start, &kind, &retention, &query, &blocker) != nil {
						continue
					}
					w := seen[st]
					if w == nil {
						w = &wait{first: now, kind: kind, retention: retention}
						seen[st] = w
					}
					w.last = now
					d := w.last.Sub(w.first) + lockSample
					switch {
					case retention:
						retentionWait.Store(max(retentionWait.Load(), int64(d)))
					default:
						waitsMu.Lock()
						if d > waits[kind].took {
							waits[kind] = lockWait{took: d, query: query, blocker: blocker}
						}
						waitsMu.Unlock()
						longest.Store(max(longest.Load(), int64(d)))
					}
				}
				rows.Close()
			}
			sleepCtx(watch, lockSample)
		}
	}()
	go func() { // River's cleaner, by the deletions Postgres counts on river_job
		defer wg.Done()
		var base int64 = -1
		for watch.Err() == nil {
			var deleted int64
			var left bool
			err := env.pool.QueryRow(watch, fmt.Sprintf(`SELECT n_tup_del, EXISTS (SELECT 1 FROM %[1]s.river_job WHERE state = 'completed' AND finalized_at < $1)
				FROM pg_stat_user_tables WHERE schemaname = '%[1]s' AND relname = 'river_job'`, s), horizon).Scan(&deleted, &left)
			if err == nil {
				now := time.Now().UnixNano()
				switch {
				case base < 0:
					base = deleted
				case deleted > base && cleanerStart.Load() == 0:
					cleanerStart.Store(now)
				}
				if !left {
					cleanerEnd.Store(now)
					close(cleanerDone)
					return
				}
			}
			sleepCtx(watch, 250*time.Millisecond)
		}
	}()

	// Long enough for the cleaner at 20,000 rows/s, and at least a minute.
	duration := max(time.Minute, time.Duration(float64(res.completedPruned)/20_000*float64(time.Second)))
	started := time.Now()
	res.steady, err = steadyWith(ctx, env, rcv, &steadyConfig{
		rate: opts.steadyRate, duration: duration,
		configure: func(c *jobs.Config) {
			c.CompletedRetention = keep
			c.RetentionInterval = time.Second
			c.Logger = slog.New(drops)
		},
		beforeStop: func() {
			select {
			case <-cleanerDone:
			default:
				res.unfinished = true
				select { // let it finish without load
				case <-cleanerDone:
				case <-time.After(10 * time.Minute):
				case <-ctx.Done():
				}
			}
		},
	})
	stopWatch()
	wg.Wait()
	if err != nil {
		return nil, fmt.Errorf("retention pass: %w", err)
	}
	if start, end := cleanerStart.Load(), cleanerEnd.Load(); end > 0 {
		if start == 0 {
			start = started.UnixNano()
		}
		res.pruneTook = time.Duration(end - start)
		res.pruneRate = float64(res.completedPruned) / max(res.pruneTook.Seconds(), 0.001)
	}
	res.dropTook = drops.took(oldPartition)
	res.longestLockWait = time.Duration(longest.Load())
	res.lockWaits = waits
	res.retentionWait = time.Duration(retentionWait.Load())
	logf("  retention: %s jobs pruned at %.0f/s; partition dropped in %s; longest lock wait %s; p99 meanwhile %s",
		thousands(float64(res.completedPruned)), res.pruneRate, ms(res.dropTook), ms(res.longestLockWait), ms(res.steady.p99))
	for kind, lw := range waits {
		logf("    waits for a lock of kind %s: longest %s, %q behind %q", kind, ms(lw.took), lw.query, lw.blocker)
	}
	return res, nil
}

// lockWait is the longest wait for one kind of lock: how long, and the
// statements of the waiting session and of the first session it waited for.
type lockWait struct {
	took           time.Duration
	query, blocker string
}

// markdownCode quotes a statement for a table cell.
func markdownCode(query string) string {
	query = strings.Join(strings.Fields(query), " ")
	if query == "" {
		return "?"
	}
	return "`" + strings.ReplaceAll(query, "|", "\\|") + "`"
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// dropRecorder is a slog handler that keeps how long each partition drop took,
// from the retention job's "dropped event partition" lines.
type dropRecorder struct {
	mu    sync.Mutex
	drops map[string]time.Duration
}

func (r *dropRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *dropRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *dropRecorder) WithGroup(string) slog.Handler            { return r }
func (r *dropRecorder) Handle(_ context.Context, rec slog.Record) error {
	if rec.Message != "dropped event partition" {
		return nil
	}
	var name string
	var took time.Duration
	rec.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "partition":
			name = a.Value.String()
		case "took":
			took = a.Value.Duration()
		}
		return true
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.drops == nil {
		r.drops = map[string]time.Duration{}
	}
	r.drops[name] = took
	return nil
}

func (r *dropRecorder) took(name string) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.drops[name]
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
}

// runLong runs the long scenarios (scale, backlog) once each and writes their
// report (to -out as well as stdout).
func runLong(ctx context.Context, pool *pgxpool.Pool, rcv *receiver, opts *options) error {
	// A section the run did not make is kept from the report it replaces, so
	// make bench-scale and make bench-backlog each update their own.
	previous := previousSections(opts.out)
	var sections []string
	if opts.scenarios["scale"] {
		res, err := runScale(ctx, pool, rcv, opts)
		if err != nil {
			return err
		}
		sections = append(sections, res.markdown(opts))
	} else if old, ok := previous[scaleHeading]; ok {
		sections = append(sections, old)
	}
	if opts.scenarios["backlog"] {
		res, err := runBacklog(ctx, pool, opts)
		if err != nil {
			return err
		}
		sections = append(sections, res.markdown(opts))
	} else if old, ok := previous[backlogHeading]; ok {
		sections = append(sections, old)
	}
	if bad := rcv.badSignatures.Load(); bad > 0 {
		return fmt.Errorf("the receiver rejected %d signatures", bad)
	}
	m := describeMachine(ctx, pool)
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# Benchmarks at scale")
	w("")
	w("Written by `make bench-scale` and `make bench-backlog`; each replaces its own section and keeps")
	w("the other's. [benchmarks.md](benchmarks.md) has the figures on an empty schema. The machine")
	w("below is the one the latest section was measured on.")
	w("")
	w("- CPU: %s, %d cores; memory %s", m.cpu, m.cores, m.memory)
	w("- PostgreSQL %s (its configuration as installed); %s, River %s", m.postgres, m.goVersion, m.river)
	w("")
	for _, s := range sections {
		b.WriteString(s)
	}
	fmt.Print(b.String())
	if opts.out != "" {
		if err := os.WriteFile(opts.out, []byte(b.String()), 0o644); err != nil { //nolint:gosec // a report, meant to be read
			return fmt.Errorf("write report: %w", err)
		}
		logf("wrote %s", opts.out)
	}
	return nil
}

// The long scenarios' sections start with these headings.
const (
	scaleHeading   = "## Scale"
	backlogHeading = "## Memory under a backlog"
)

// previousSections reads the report at path (if any) and returns its long
// scenarios' sections by heading, each up to the next section of its kind.
func previousSections(path string) map[string]string {
	found := map[string]string{}
	if path == "" {
		return found
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return found
	}
	text := string(data)
	headings := []string{scaleHeading, backlogHeading}
	for _, heading := range headings {
		start := strings.Index(text, "\n"+heading)
		if start < 0 {
			continue
		}
		section := text[start+1:]
		for _, other := range headings {
			if other == heading {
				continue
			}
			if end := strings.Index(section, "\n"+other); end >= 0 {
				section = section[:end+1]
			}
		}
		found[heading] = section
	}
	return found
}

func longCommand(opts *options) string {
	names := make([]string, 0, 2)
	for _, name := range longScenarios {
		if opts.scenarios[name] {
			names = append(names, name)
		}
	}
	command := "go run ./bench -scenarios " + strings.Join(names, ",")
	if opts.scenarios["scale"] {
		command += fmt.Sprintf(" -hours %g -rate %d -runs %d", opts.hours, opts.rate, opts.runs)
	}
	if opts.scenarios["backlog"] {
		command += fmt.Sprintf(" -backlog-events %d", opts.backlogEvents)
	}
	if opts.out != "" {
		command += " -out " + opts.out
	}
	return command
}

func medianOf(values []float64) float64 { return spreadOf(values).median }

func (r *scaleResult) markdown(opts *options) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	met := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "**no**"
	}
	steadyP := func(runs []scaleRun, f func(*steadyResult) time.Duration) float64 {
		values := make([]float64, len(runs))
		for i, run := range runs {
			values[i] = toMillis(f(run.steady))
		}
		return medianOf(values)
	}
	drainOf := func(runs []scaleRun) float64 {
		values := make([]float64, len(runs))
		for i, run := range runs {
			values[i] = run.drain
		}
		return medianOf(values)
	}
	p50 := func(s *steadyResult) time.Duration { return s.p50 }
	p99 := func(s *steadyResult) time.Duration { return s.p99 }
	emptyP50, fullP50 := steadyP(r.empty, p50), steadyP(r.full, p50)
	emptyP99, fullP99 := steadyP(r.empty, p99), steadyP(r.full, p99)
	emptyDrain, fullDrain := drainOf(r.empty), drainOf(r.full)
	events := float64(r.fill.events)

	w(scaleHeading+": %g hours at %s events/s", r.spec.hours, thousands(float64(r.spec.rate)))
	w("")
	w("Measured by `%s` on %s.", longCommand(opts), time.Now().UTC().Format("2006-01-02"))
	w("")
	w("A schema filled by set-based SQL with the state of an install after %g hours at %s events/s:", r.spec.hours, thousands(float64(r.spec.rate)))
	w("%s events (Letta-like payloads, day partitions, 100 subscriptions of 10 organizations, 5,000 agents),", thousands(events))
	w("%s delivery jobs (one per event: one in 200 retrying, one in 1,000 dead, the rest delivered) and", thousands(float64(r.fill.deliveries)))
	w("%s completed fan-out jobs; filled in %s including VACUUM ANALYZE (%s). Beside it, an empty schema;", thousands(float64(r.fill.fanouts)), r.fill.took.Round(time.Second), r.fill.vacuum.Round(time.Second))
	w("steady and drain ran %d times on each, alternating, and the figures are medians.", len(r.full))
	w("")
	w("| figure | empty schema | filled schema | filled ÷ empty | target | met |")
	w("|---|---|---|---|---|---|")
	w("| steady %s events/s, commit → receipt p50, ms | %.1f | %.1f | %.2f | | |", thousands(float64(opts.steadyRate)), emptyP50, fullP50, fullP50/emptyP50)
	w("| steady, commit → receipt p99, ms | %.1f | %.1f | %.2f | ≤ %.2f× | %s |", emptyP99, fullP99, fullP99/emptyP99, scaleSteadyTarget, met(fullP99/emptyP99 <= scaleSteadyTarget))
	w("| drain of %s events, deliveries/s | %s | %s | %.2f (time %.2f×) | time ≤ %.2f× | %s |", thousands(float64(opts.drainEvents)), thousands(emptyDrain), thousands(fullDrain),
		fullDrain/emptyDrain, emptyDrain/fullDrain, scaleSteadyTarget, met(emptyDrain/fullDrain <= scaleSteadyTarget))
	cpuOf := func(runs []scaleRun, f func(scaleRun) float64) float64 {
		values := make([]float64, len(runs))
		for i, run := range runs {
			values[i] = f(run)
		}
		return medianOf(values)
	}
	self := func(r scaleRun) float64 { return r.cpuSelf }
	server := func(r scaleRun) float64 { return r.cpuServer }
	// Postgres processes that exit during a drain (other databases' autovacuum
	// workers on a shared server) take their CPU time with them: no figure then.
	if emptyCPU, fullCPU := cpuOf(r.empty, server), cpuOf(r.full, server); emptyCPU > 0 && fullCPU > 0 {
		w("| drain, CPU per delivery in Postgres, µs | %.0f | %.0f | %.2f | | |", emptyCPU, fullCPU, fullCPU/emptyCPU)
	} else {
		w("| drain, CPU per delivery in Postgres, µs | n/a | n/a | | | |")
	}
	w("| drain, CPU per delivery in the daemon and receiver, µs | %.0f | %.0f | %.2f | | |", cpuOf(r.empty, self), cpuOf(r.full, self), cpuOf(r.full, self)/cpuOf(r.empty, self))
	w("")
	w("CPU is read from /proc: this process (daemon, producers, receiver) and the Postgres processes of")
	w("the benchmark's database plus the server's background processes (which also serve other databases).")
	w("")
	w("### Delivery history on the filled schema")
	w("")
	w("`Store.DeliveryList` (`GET /v1/deliveries`), first page of 50, median and worst of 7 calls; target ≤ %s median.", ms(scaleHistoryTarget))
	w("")
	w("| filter | median, ms | worst, ms | met |")
	w("|---|---|---|---|")
	for _, h := range r.history {
		w("| %s | %.1f | %.1f | %s |", h.name, toMillis(h.median), toMillis(h.max), met(h.median <= scaleHistoryTarget))
	}
	w("")
	if rp := r.retention; rp != nil {
		w("### One retention pass under the steady load")
		w("")
		w("The daemon starts with delivered deliveries kept %s, so River's cleaner deletes the", rp.keep.Round(time.Second))
		w("oldest %.0f %% of the filled span's completed jobs, %s, as when the delivered retention", scalePruneShare*100, thousands(float64(rp.completedPruned)))
		w("ends for history built up at the filled rate; and with a partition of %s events from 30 days ago, past", thousands(float64(rp.partitionRows)))
		w("the 7-day event retention, which outboxd's retention job drops; %s events/s are published meanwhile.", thousands(float64(opts.steadyRate)))
		w("")
		w("| figure | value | target | met |")
		w("|---|---|---|---|")
		w("| completed jobs deleted per second (River's cleaner) | %s | ≥ %.0f× %s/s = %s/s | %s |", thousands(rp.pruneRate), scalePruneTarget, thousands(float64(r.spec.rate)),
			thousands(scalePruneTarget*float64(r.spec.rate)), met(rp.pruneRate >= scalePruneTarget*float64(r.spec.rate)))
		w("| cleaner's pass, s | %.1f | | |", rp.pruneTook.Seconds())
		w("| partition drop (%s events), ms | %.1f | | |", thousands(float64(rp.partitionRows)), toMillis(rp.dropTook))
		w("| longest lock wait of a producer or the daemon, ms | %.1f | ≤ %s | %s |", toMillis(rp.longestLockWait), ms(scaleLockTarget), met(rp.longestLockWait <= scaleLockTarget))
		kinds := slices.Sorted(maps.Keys(rp.lockWaits))
		for _, kind := range kinds {
			lw := rp.lockWaits[kind]
			w("| … waiting for a lock of kind %s, ms (the waiter's statement; its blocker's) | %.1f (%s; %s) | | |", kind, toMillis(lw.took),
				markdownCode(lw.query), markdownCode(lw.blocker))
		}
		w("| retention's detach, waiting for the table's lock, ms | %.1f | | |", toMillis(rp.retentionWait))
		w("| steady p99 during the pass, ms (÷ filled without) | %.1f (%.2f) | | |", toMillis(rp.steady.p99), toMillis(rp.steady.p99)/fullP99)
		w("| steady max during the pass, ms | %.1f | | |", toMillis(rp.steady.max))
		w("")
		w("Lock waits are read from `pg_stat_activity` every %s, each timed from the first look that", ms(lockSample))
		w("sees it to the last, plus %s. Retention's detach takes `outbox.events`' lock with a %s", ms(lockSample), ms(50*time.Millisecond))
		w("`lock_timeout` and tries again later when it is not free, so that nobody queues behind it for longer.")
		if rp.unfinished {
			w("")
			w("The cleaner had not finished when the load ended; it finished without load.")
		}
		w("")
	}
	w("### Disk per million events")
	w("")
	w("Right after the fill (then VACUUM ANALYZE), divided by %s events; `river_job` holds %s rows", thousands(events), thousands(float64(r.jobRows)))
	w("(deliveries and fan-out jobs). Heap includes TOAST.")
	w("")
	w("| table | heap, MiB / M events | indexes, MiB / M events | total, MiB / M events |")
	w("|---|---|---|---|")
	per := func(n int64) float64 { return float64(n) / (1 << 20) / (events / 1e6) }
	w("| outbox.events | %.0f | %.0f | %.0f |", per(r.eventsSize.heap), per(r.eventsSize.indexes), per(r.eventsSize.heap+r.eventsSize.indexes))
	w("| river_job | %.0f | %.0f | %.0f |", per(r.jobSize.heap), per(r.jobSize.indexes), per(r.jobSize.heap+r.jobSize.indexes))
	w("")
	return b.String()
}
