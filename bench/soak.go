package main

// The soak scenario (issue 11, point 2): a real `outboxd run` process under
// steady paced load, with retention shortened so that partitions of
// outbox.events are dropped and River's completed jobs are deleted the whole
// time. Every sample interval it records commit→receipt p50/p99, the delivered
// rate, the sizes of outbox.events (every partition) and river_job with their
// indexes, dead tuples, and the daemon's RSS; it prints them as a table with
// sparklines and judges them by the rules below (see docs/benchmarks-soak.md).
//
//	go run ./bench -scenario soak -duration 30m -rate 1000
//
// Rules (each names its windows; d is the run's length):
//
//   - latency: p99 over the last window ≤ 1.5 × p99 over the first window, the
//     windows being the first and last fifth of the run, at most 5 minutes each;
//     a rise of under 10 ms is not counted (scheduler noise on a small machine).
//   - retention keeps up: once a first retention cycle has passed (T0 below), the
//     oldest partition of outbox.events never starts more than event retention +
//     partition width + retention interval + 20 s ago, and the oldest completed
//     river_job never finished more than delivered retention + River's cleaner
//     interval (30 s) + 20 s ago.
//   - no growth: sizes (heap + TOAST + indexes) of outbox.events and river_job
//     after T0 are split into two halves; the largest size in the second half
//     must be ≤ 1.2 × the largest in the first + 2 MiB. A half must span two
//     sawtooth periods (a partition width for events, the cleaner's 30 s for
//     river_job), else the run is too short to judge growth and says so.
//   - no leak: the daemon's mean RSS over the last fifth ≤ 1.15 × its mean over
//     the second fifth + 8 MiB (the first fifth is warm-up).
//   - nothing lost: every committed event is received once the producers stop.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/signing"
)

// riverCleanerInterval is River's job cleaner's interval (v0.51.1, not
// configurable through outboxd).
const riverCleanerInterval = 30 * time.Second

// soakConfig is one soak's settings, derived from its length and rate.
type soakConfig struct {
	rate     int
	duration time.Duration

	eventRetention     time.Duration
	completedRetention time.Duration
	deadRetention      time.Duration
	retentionInterval  time.Duration
	partitionWidth     time.Duration

	// row is the table's sample interval; probe is how often sizes and RSS are
	// read (more often, so that a sawtooth's peaks are seen).
	row, probe time.Duration
}

// newSoakConfig shortens retention to the 5 min / 2 min / 5 min for runs
// of 20 minutes or more; shorter runs shorten it further so that a first
// retention cycle completes early in the run.
func newSoakConfig(rate int, duration time.Duration) *soakConfig {
	c := &soakConfig{rate: rate, duration: duration, partitionWidth: time.Minute}
	if duration >= 20*time.Minute {
		c.eventRetention, c.completedRetention, c.deadRetention, c.retentionInterval = 5*time.Minute, 2*time.Minute, 5*time.Minute, time.Minute
	} else {
		c.eventRetention, c.completedRetention, c.deadRetention, c.retentionInterval = 30*time.Second, 30*time.Second, 30*time.Second, 15*time.Second
	}
	c.probe = 10 * time.Second
	c.row = min(max((duration/15).Truncate(c.probe), c.probe), time.Minute)
	return c
}

// firstCycle is when retention has had a full cycle: the first partition is
// past its retention and dropped, and River has deleted the first completed
// jobs.
func (c *soakConfig) firstCycle() time.Duration {
	return max(c.eventRetention+c.partitionWidth+c.retentionInterval, c.completedRetention+riverCleanerInterval)
}

func (c *soakConfig) eventSpanLimit() time.Duration {
	return c.eventRetention + c.partitionWidth + c.retentionInterval + 20*time.Second
}

func (c *soakConfig) jobSpanLimit() time.Duration {
	return c.completedRetention + riverCleanerInterval + 20*time.Second
}

func (c *soakConfig) daemonArgs() []string {
	return []string{
		"--event-retention", c.eventRetention.String(),
		"--completed-retention", c.completedRetention.String(),
		"--dead-retention", c.deadRetention.String(),
		"--retention-interval", c.retentionInterval.String(),
	}
}

// soakReceiver answers every webhook at once and measures commit→receipt: the
// producers record each event's commit time, the receiver matches its
// webhook-id. It keeps only what is in flight, so a long soak costs no memory.
type soakReceiver struct {
	server *http.Server
	url    string

	mu       sync.Mutex
	pending  map[string]time.Time // committed, not yet received
	early    map[string]time.Time // received before the commit was recorded, or again
	lat      []time.Duration      // since the last take
	received int64                // distinct, since the last take
	dups     int64
	sent     atomic.Int64 // commits, since the last take
}

func startSoakReceiver() (*soakReceiver, error) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("receiver: %w", err)
	}
	r := &soakReceiver{
		url:     "http://" + listener.Addr().String() + "/webhooks",
		pending: map[string]time.Time{},
		early:   map[string]time.Time{},
	}
	r.server = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.server.Serve(listener) }()
	return r, nil
}

func (r *soakReceiver) close() { _ = r.server.Close() }

func (r *soakReceiver) serve(w http.ResponseWriter, req *http.Request) {
	at := time.Now()
	_, _ = io.Copy(io.Discard, req.Body)
	id := req.Header.Get(signing.HeaderID)
	if id == "" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	if committed, ok := r.pending[id]; ok {
		delete(r.pending, id)
		r.lat = append(r.lat, at.Sub(committed))
		r.received++
	} else if _, again := r.early[id]; again {
		r.dups++
	} else {
		r.early[id] = at
	}
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// committed records an event's commit time.
func (r *soakReceiver) committed(id string, at time.Time) {
	r.sent.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if received, ok := r.early[id]; ok {
		delete(r.early, id)
		r.lat = append(r.lat, max(received.Sub(at), 0))
		r.received++
		return
	}
	r.pending[id] = at
}

// take returns the latencies, distinct receipts and commits since the last take.
func (r *soakReceiver) take() (lat []time.Duration, received, sent int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	lat, received = r.lat, r.received
	r.lat, r.received = nil, 0
	return lat, received, r.sent.Swap(0)
}

// outstanding is how many committed events are not yet received, and how many
// receipts match no recorded commit (duplicates of events received before).
func (r *soakReceiver) outstanding() (pending int, duplicates int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending), r.dups + int64(len(r.early))
}

// soakProbe is one reading of the database and the daemon.
type soakProbe struct {
	at                      time.Duration // since the start of the load
	partitions              int
	eventsHeap, eventsIndex int64
	jobsHeap, jobsIndex     int64
	eventsLive, eventsDead  int64
	jobsLive, jobsDead      int64
	jobsAutovacuums         int64
	eventSpan, jobSpan      time.Duration // age of the oldest partition's start, of the oldest completed job
	rss                     int64
	load1                   float64 // the machine's 1-minute load average
	deadJobs                int64
	defaultRows             int64 // events in the DEFAULT partition (no partition for their time)
}

func (p *soakProbe) eventsBytes() int64 { return p.eventsHeap + p.eventsIndex }
func (p *soakProbe) jobsBytes() int64   { return p.jobsHeap + p.jobsIndex }

// probeSoak reads sizes, tuples and spans.
func probeSoak(ctx context.Context, pool *pgxpool.Pool, schema string) (*soakProbe, error) {
	p := &soakProbe{}
	var oldestPart, oldestJob *time.Time
	var now time.Time
	err := pool.QueryRow(ctx, fmt.Sprintf(`
		WITH parts AS (
			SELECT c.oid, c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid
			WHERE i.inhparent = '%[1]s.events'::regclass
		), stats AS (
			SELECT * FROM pg_stat_user_tables WHERE schemaname = '%[1]s'
		)
		SELECT
			(SELECT count(*) FROM parts WHERE relname <> 'events_default'),
			(SELECT coalesce(sum(pg_table_size(oid)), 0) FROM parts)::bigint,
			(SELECT coalesce(sum(pg_indexes_size(oid)), 0) FROM parts)::bigint,
			coalesce(pg_table_size('%[1]s.river_job'::regclass), 0),
			coalesce(pg_indexes_size('%[1]s.river_job'::regclass), 0),
			(SELECT coalesce(sum(n_live_tup), 0) FROM stats WHERE relname IN (SELECT relname FROM parts))::bigint,
			(SELECT coalesce(sum(n_dead_tup), 0) FROM stats WHERE relname IN (SELECT relname FROM parts))::bigint,
			(SELECT coalesce(sum(n_live_tup), 0) FROM stats WHERE relname = 'river_job')::bigint,
			(SELECT coalesce(sum(n_dead_tup), 0) FROM stats WHERE relname = 'river_job')::bigint,
			(SELECT coalesce(sum(autovacuum_count), 0) FROM stats WHERE relname = 'river_job')::bigint,
			(SELECT min(from_time) FROM %[1]s.events_partitions()),
			(SELECT min(finalized_at) FROM %[1]s.river_job WHERE state = 'completed' AND finalized_at IS NOT NULL),
			(SELECT count(*) FROM %[1]s.river_job WHERE state = 'discarded' AND finalized_at IS NOT NULL),
			(SELECT count(*) FROM %[1]s.events_default),
			clock_timestamp()`, schema)).Scan(
		&p.partitions, &p.eventsHeap, &p.eventsIndex, &p.jobsHeap, &p.jobsIndex,
		&p.eventsLive, &p.eventsDead, &p.jobsLive, &p.jobsDead, &p.jobsAutovacuums,
		&oldestPart, &oldestJob, &p.deadJobs, &p.defaultRows, &now)
	if err != nil {
		return nil, fmt.Errorf("probe: %w", err)
	}
	if oldestPart != nil {
		p.eventSpan = now.Sub(*oldestPart)
	}
	if oldestJob != nil {
		p.jobSpan = now.Sub(*oldestJob)
	}
	return p, nil
}

// loadAverage is the machine's 1-minute load average (0 if unknown): a soak on
// a shared machine reports how busy the machine was.
func loadAverage() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var load float64
	_, _ = fmt.Sscan(string(data), &load)
	return load
}

// soakRow is one line of the table.
type soakRow struct {
	at            time.Duration // end of the interval, since the start of the load
	sentPerSec    float64
	deliveredPerS float64
	p50, p99      time.Duration
	lat           []time.Duration
	probe         *soakProbe // the last probe of the interval
}

// soakResult is a finished soak.
type soakResult struct {
	cfg        *soakConfig
	rows       []*soakRow
	probes     []*soakProbe
	committed  int64
	lost       int
	duplicates int64
	errors     []string
	verdicts   []verdict
	took       time.Duration
	server     serverSettings
}

// serverSettings are the Postgres settings that decide a soak's steady state.
type serverSettings struct {
	autovacuum, sharedBuffers, synchronousCommit, fsync string
}

func readServerSettings(ctx context.Context, pool *pgxpool.Pool) (serverSettings, error) {
	var s serverSettings
	err := pool.QueryRow(ctx, `SELECT current_setting('autovacuum'), current_setting('shared_buffers'),
		current_setting('synchronous_commit'), current_setting('fsync')`).Scan(&s.autovacuum, &s.sharedBuffers, &s.synchronousCommit, &s.fsync)
	if err != nil {
		return s, fmt.Errorf("read server settings: %w", err)
	}
	return s, nil
}

type verdict struct {
	rule   string
	ok     bool
	judged bool
	detail string
}

// setSoakPartitions replaces the fresh schema's day partitions (empty) with
// partitions of the soak's width from now on, so that drops happen every width.
func setSoakPartitions(ctx context.Context, env *procEnv, width time.Duration) error {
	_, err := env.pool.Exec(ctx, fmt.Sprintf(`
		SELECT %[1]s.events_partition_drop(name) FROM %[1]s.events_partitions() WHERE from_time IS NOT NULL;
		UPDATE %[1]s.settings SET event_partition_interval = make_interval(secs => %[2]d);
		SELECT %[1]s.events_partitions_ensure(now(), now() + make_interval(secs => %[3]d));`,
		env.schema, int(width.Seconds()), int((10*width).Seconds())))
	if err != nil {
		return fmt.Errorf("narrow partitions: %w", err)
	}
	return nil
}

// runSoak is the soak scenario.
func runSoak(ctx context.Context, pool *pgxpool.Pool, opts *options) error {
	cfg := newSoakConfig(opts.rate, opts.duration)
	if cfg.rate < 1 || cfg.duration < time.Minute {
		return errors.New("soak: -rate must be positive and -duration at least 1m")
	}
	logf("soak: %d events/s for %s; retention: events %s, delivered %s, dead %s; partitions of %s, retention every %s",
		cfg.rate, cfg.duration, cfg.eventRetention, cfg.completedRetention, cfg.deadRetention, cfg.partitionWidth, cfg.retentionInterval)
	build, err := buildDaemon(ctx)
	if err != nil {
		return err
	}
	defer build.remove()
	rcv, err := startSoakReceiver()
	if err != nil {
		return err
	}
	defer rcv.close()

	var res *soakResult
	_, err = withSchema(ctx, pool, func(base *benchEnv) (float64, error) {
		env, err := newProcEnv(base, opts.databaseURL)
		if err != nil {
			return 0, err
		}
		if err := setSoakPartitions(ctx, env, cfg.partitionWidth); err != nil {
			return 0, err
		}
		// The receiver checks no signature: only timestamps matter here.
		if _, err := env.store.SubscriptionCreate(ctx, &outbox.SubscriptionCreateParams{URL: rcv.url, EventTypes: []string{"*"}}); err != nil {
			return 0, fmt.Errorf("subscribe: %w", err)
		}
		res, err = soak(ctx, env, build, rcv, cfg)
		return 0, err
	})
	if err != nil {
		return fmt.Errorf("soak: %w", err)
	}
	report := res.markdown(describeMachine(ctx, pool))
	fmt.Print(report)
	if opts.out != "" {
		if err := os.WriteFile(opts.out, []byte(report), 0o644); err != nil { //nolint:gosec // a report, meant to be read
			return fmt.Errorf("write report: %w", err)
		}
		logf("wrote %s", opts.out)
	}
	var failed []string
	for _, v := range res.verdicts {
		if v.judged && !v.ok {
			failed = append(failed, v.rule+": "+v.detail)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("soak failed:\n  %s", strings.Join(failed, "\n  "))
	}
	return nil
}

// soak runs the load against one daemon process and samples it.
func soak(ctx context.Context, env *procEnv, build *daemonBuild, rcv *soakReceiver, cfg *soakConfig) (*soakResult, error) {
	daemon, err := startDaemonProc(ctx, build, env, "soak-daemon", &daemonOpts{args: cfg.daemonArgs()})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := daemon.stop(); err != nil {
			logf("stop daemon: %v", err)
		}
	}()

	res := &soakResult{cfg: cfg}
	if res.server, err = readServerSettings(ctx, env.pool); err != nil {
		return nil, err
	}
	if res.server.autovacuum != "on" {
		logf("soak: WARNING: this server runs with autovacuum = %s; river_job and outbox.events will bloat as they would in no real installation", res.server.autovacuum)
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	start := time.Now()
	end := start.Add(cfg.duration)
	var committed atomic.Int64
	errs := make(chan error, steadyProducers)
	var wg sync.WaitGroup
	mean := time.Duration(float64(time.Second) * float64(steadyProducers) / float64(cfg.rate))
	for c := range steadyProducers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			due := start.Add(time.Duration(c) * mean / steadyProducers)
			for i := 0; ; i++ {
				if i > 0 {
					due = due.Add(mean)
				}
				// A producer that fell behind does not catch up after the end:
				// the load stops on time and the sent/s column shows the shortfall.
				if !due.Before(end) || !time.Now().Before(end) {
					return
				}
				if wait := time.Until(due); wait > 0 {
					select {
					case <-time.After(wait):
					case <-loadCtx.Done():
						return
					}
				}
				id, err := publishWithUpdate(loadCtx, env.benchEnv, i*steadyProducers+c)
				if err != nil {
					if loadCtx.Err() == nil {
						errs <- err
					}
					return
				}
				rcv.committed(id, time.Now())
				committed.Add(1)
			}
		}()
	}

	// Sample until the end of the load.
	nextRow := start.Add(cfg.row)
	var last *soakProbe
	rowStart := start
	for tick := start.Add(cfg.probe); ; tick = tick.Add(cfg.probe) {
		select {
		case <-time.After(time.Until(tick)):
		case err := <-errs:
			return nil, fmt.Errorf("publish: %w", err)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		p, err := probeSoak(ctx, env.pool, env.schema)
		if err != nil {
			return nil, err
		}
		p.at = tick.Sub(start)
		p.rss = daemon.rssBytes()
		p.load1 = loadAverage()
		res.probes = append(res.probes, p)
		last = p
		if !tick.Before(nextRow) {
			lat, received, sent := rcv.take()
			slices.Sort(lat)
			secs := tick.Sub(rowStart).Seconds()
			row := &soakRow{at: tick.Sub(start), sentPerSec: float64(sent) / secs, deliveredPerS: float64(received) / secs,
				p50: percentile(lat, 0.50), p99: percentile(lat, 0.99), lat: lat, probe: last}
			res.rows = append(res.rows, row)
			logf("  %s  sent %5.0f/s delivered %5.0f/s  p50 %6s p99 %6s  events %6.1f MB (%d parts)  river_job %6.1f MB  RSS %5.1f MB  load %.1f",
				fmtClock(row.at), row.sentPerSec, row.deliveredPerS, ms(row.p50), ms(row.p99),
				mib(p.eventsBytes()), p.partitions, mib(p.jobsBytes()), mib(p.rss), p.load1)
			rowStart = tick
			nextRow = nextRow.Add(cfg.row)
		}
		if !tick.Before(end) {
			break
		}
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	res.committed = committed.Load()

	// Everything committed must arrive.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		pending, _ := rcv.outstanding()
		if pending == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond) // the receiver's map drains as webhooks arrive
	}
	res.lost, res.duplicates = rcv.outstanding()
	res.took = time.Since(start)
	res.errors = daemon.logLines("ERROR")
	res.judge()
	return res, nil
}

func fmtClock(d time.Duration) string {
	d = d.Round(time.Second)
	return fmt.Sprintf("%2d:%02d", int(d.Minutes()), int(d.Seconds())%60)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// window returns the pooled, sorted latencies of the rows ending in (from, to].
func (r *soakResult) latencyWindow(from, to time.Duration) []time.Duration {
	var all []time.Duration
	for _, row := range r.rows {
		if row.at > from && row.at <= to {
			all = append(all, row.lat...)
		}
	}
	slices.Sort(all)
	return all
}

func (r *soakResult) probesIn(from, to time.Duration) []*soakProbe {
	var out []*soakProbe
	for _, p := range r.probes {
		if p.at > from && p.at <= to {
			out = append(out, p)
		}
	}
	return out
}

// judge applies the rules in the file's comment.
func (r *soakResult) judge() {
	d := r.cfg.duration
	r.verdicts = nil

	// A steady state needs autovacuum: without it every deleted or updated row
	// stays, and River's fetches slow down as river_job's dead tuples pile up.
	r.verdicts = append(r.verdicts, verdict{rule: "server autovacuum", judged: true, ok: r.server.autovacuum == "on",
		detail: fmt.Sprintf("autovacuum = %s (a soak on a server without it measures bloat, not outboxd)", r.server.autovacuum)})

	// Latency.
	w := min(d/5, 5*time.Minute)
	first, last := r.latencyWindow(0, w), r.latencyWindow(d-w, d)
	if len(first) == 0 || len(last) == 0 {
		r.verdicts = append(r.verdicts, verdict{rule: "p99 steady", judged: true, detail: "no latencies measured"})
	} else {
		a, b := percentile(first, 0.99), percentile(last, 0.99)
		ok := b <= a*3/2 || b-a < 10*time.Millisecond
		r.verdicts = append(r.verdicts, verdict{rule: "p99 steady", judged: true, ok: ok, detail: fmt.Sprintf(
			"p99 %s over the first %s, %s over the last %s (%.2f×; limit 1.5×, or a rise under 10 ms)",
			ms(a), w, ms(b), w, float64(b)/float64(a))})
	}

	// Retention keeps up.
	t0 := r.cfg.firstCycle()
	steady := r.probesIn(t0, d+time.Hour)
	if len(steady) == 0 {
		r.verdicts = append(r.verdicts, verdict{rule: "retention keeps up", detail: fmt.Sprintf("run shorter than a first retention cycle (%s)", t0)})
	} else {
		var maxEvents, maxJobs time.Duration
		for _, p := range steady {
			maxEvents, maxJobs = max(maxEvents, p.eventSpan), max(maxJobs, p.jobSpan)
		}
		r.verdicts = append(r.verdicts, verdict{rule: "retention keeps up", judged: true,
			ok: maxEvents <= r.cfg.eventSpanLimit() && maxJobs <= r.cfg.jobSpanLimit(),
			detail: fmt.Sprintf("after %s: oldest event partition at most %s old (limit %s), oldest completed job at most %s old (limit %s)",
				t0, maxEvents.Round(time.Second), r.cfg.eventSpanLimit(), maxJobs.Round(time.Second), r.cfg.jobSpanLimit())})
	}

	// No growth.
	r.verdicts = append(r.verdicts, r.growth("events size", t0, r.cfg.partitionWidth, (*soakProbe).eventsBytes))
	r.verdicts = append(r.verdicts, r.growth("river_job size", t0, riverCleanerInterval, (*soakProbe).jobsBytes))

	// No leak.
	a, b := r.probesIn(d/5, 2*d/5), r.probesIn(4*d/5, d)
	if len(a) == 0 || len(b) == 0 {
		r.verdicts = append(r.verdicts, verdict{rule: "daemon RSS", detail: "too few samples"})
	} else {
		ma, mb := meanOf(a, func(p *soakProbe) float64 { return float64(p.rss) }), meanOf(b, func(p *soakProbe) float64 { return float64(p.rss) })
		r.verdicts = append(r.verdicts, verdict{rule: "daemon RSS", judged: true, ok: mb <= 1.15*ma+8*(1<<20), detail: fmt.Sprintf(
			"mean %.1f MiB over the second fifth, %.1f MiB over the last (limit 1.15× + 8 MiB)", ma/(1<<20), mb/(1<<20))})
	}

	// Nothing lost.
	r.verdicts = append(r.verdicts, verdict{rule: "nothing lost", judged: true, ok: r.lost == 0, detail: fmt.Sprintf(
		"%d events committed, %d not received within 2 min of the end, %d duplicates", r.committed, r.lost, r.duplicates)})
	r.verdicts = append(r.verdicts, verdict{rule: "daemon errors", judged: true, ok: len(r.errors) == 0, detail: fmt.Sprintf(
		"%d ERROR lines in the daemon's log%s", len(r.errors), firstLine(r.errors))})
}

func firstLine(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return "; first: " + lines[0]
}

func (r *soakResult) growth(rule string, t0, period time.Duration, size func(*soakProbe) int64) verdict {
	d := r.cfg.duration
	half := (d - t0) / 2
	if half < 2*period {
		return verdict{rule: rule, detail: fmt.Sprintf("run too short to judge growth: after the first retention cycle (%s) each half must span %s", t0, 2*period)}
	}
	var maxA, maxB int64
	for _, p := range r.probesIn(t0, t0+half) {
		maxA = max(maxA, size(p))
	}
	for _, p := range r.probesIn(t0+half, d) {
		maxB = max(maxB, size(p))
	}
	limit := float64(maxA)*1.2 + 2*(1<<20)
	return verdict{rule: rule, judged: true, ok: float64(maxB) <= limit, detail: fmt.Sprintf(
		"largest %.1f MiB in %s–%s, %.1f MiB in %s–%s (limit 1.2× + 2 MiB)",
		mib(maxA), fmtClock(t0), fmtClock(t0+half), mib(maxB), fmtClock(t0+half), fmtClock(d))}
}

func meanOf(probes []*soakProbe, f func(*soakProbe) float64) float64 {
	var sum float64
	for _, p := range probes {
		sum += f(p)
	}
	return sum / float64(len(probes))
}

// sparkline draws values as a row of block characters, low to high.
func sparkline(values []float64) string {
	const blocks = "▁▂▃▄▅▆▇█"
	runes := []rune(blocks)
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range values {
		lo, hi = min(lo, v), max(hi, v)
	}
	var b strings.Builder
	for _, v := range values {
		i := 0
		if hi > lo {
			i = int(math.Round((v - lo) / (hi - lo) * float64(len(runes)-1)))
		}
		b.WriteRune(runes[i])
	}
	return b.String()
}

// markdown is the soak's report.
func (r *soakResult) markdown(m machine) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	c := r.cfg
	w("## Soak: %d events/s for %s against one `outboxd run` process", c.rate, c.duration)
	w("")
	w("Retention shortened: events %s, delivered %s, dead %s; partitions of outbox.events %s wide; retention runs every %s (River deletes completed jobs every %s). "+
		"A first retention cycle is complete after %s. One subscription to a loopback receiver that answers at once; producers commit an UPDATE of an agent row and the outbox INSERT in one transaction, %d clients, evenly paced.",
		c.eventRetention, c.completedRetention, c.deadRetention, c.partitionWidth, c.retentionInterval, riverCleanerInterval, c.firstCycle(), steadyProducers)
	w("")
	w("Machine: %s, %d cores, %s RAM; PostgreSQL %s (autovacuum %s, shared_buffers %s, synchronous_commit %s, fsync %s); %s; River %s.",
		m.cpu, m.cores, m.memory, m.postgres, r.server.autovacuum, r.server.sharedBuffers, r.server.synchronousCommit, r.server.fsync, m.goVersion, m.river)
	w("")
	w("Load is the machine's 1-minute load average (%d cores).", m.cores)
	w("")
	w("| time | sent/s | delivered/s | p50 ms | p99 ms | events MiB (heap+idx) | parts | river_job MiB (heap+idx) | dead tuples events / river_job | river_job autovacuums | daemon RSS MiB | load |")
	w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, row := range r.rows {
		p := row.probe
		w("| %s | %.0f | %.0f | %.1f | %.1f | %.1f (%.1f+%.1f) | %d | %.1f (%.1f+%.1f) | %d / %d | %d | %.1f | %.1f |",
			fmtClock(row.at), row.sentPerSec, row.deliveredPerS, toMillis(row.p50), toMillis(row.p99),
			mib(p.eventsBytes()), mib(p.eventsHeap), mib(p.eventsIndex), p.partitions,
			mib(p.jobsBytes()), mib(p.jobsHeap), mib(p.jobsIndex), p.eventsDead, p.jobsDead, p.jobsAutovacuums, mib(p.rss), p.load1)
	}
	w("")
	w("Every %s (one character each; sizes and RSS are read every %s):", c.row, c.probe)
	w("")
	w("```")
	series := func(name string, unit string, f func(*soakRow) float64) {
		values := make([]float64, len(r.rows))
		for i, row := range r.rows {
			values[i] = f(row)
		}
		lo, hi := slices.Min(values), slices.Max(values)
		w("%-16s %s  %.1f–%.1f %s", name, sparkline(values), lo, hi, unit)
	}
	if len(r.rows) > 0 {
		series("p99", "ms", func(row *soakRow) float64 { return toMillis(row.p99) })
		series("delivered/s", "/s", func(row *soakRow) float64 { return row.deliveredPerS })
		series("events", "MiB", func(row *soakRow) float64 { return mib(row.probe.eventsBytes()) })
		series("river_job", "MiB", func(row *soakRow) float64 { return mib(row.probe.jobsBytes()) })
		series("river_job dead", "tuples", func(row *soakRow) float64 { return float64(row.probe.jobsDead) })
		series("daemon RSS", "MiB", func(row *soakRow) float64 { return mib(row.probe.rss) })
		series("machine load", "", func(row *soakRow) float64 { return row.probe.load1 })
	}
	w("```")
	w("")
	w("| rule | verdict | figures |")
	w("|---|---|---|")
	for _, v := range r.verdicts {
		state := "pass"
		switch {
		case !v.judged:
			state = "not judged"
		case !v.ok:
			state = "**FAIL**"
		}
		w("| %s | %s | %s |", v.rule, state, v.detail)
	}
	w("")
	return b.String()
}

// extraScenarios are run only by name (-scenario), never by `make bench`.
var extraScenarios = map[string]func(context.Context, *pgxpool.Pool, *options) error{
	"soak":    runSoak,
	"daemons": runDaemons,
}

func extraScenarioNames() []string {
	names := slices.Collect(maps.Keys(extraScenarios))
	slices.Sort(names)
	return names
}

// runExtra connects and runs one extra scenario.
func runExtra(ctx context.Context, opts *options, fn func(context.Context, *pgxpool.Pool, *options) error) error {
	if opts.databaseURL == "" {
		return errors.New("no database: pass -database-url or set DATABASE_URL (scripts/with-postgres finds or starts one)")
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
	return fn(ctx, pool, opts)
}
