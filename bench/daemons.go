package main

// The daemons scenario (issue 11, point 5): three `outboxd run` processes on one
// database share a steady load; one is killed with SIGKILL halfway through,
// and every event must still arrive. It runs twice: with the daemons connected
// to Postgres directly, and through PgBouncer in transaction pooling mode
// (--pooler transaction).
//
//	go run ./bench -scenario daemons -rate 1000
//
// Each daemon's share is read from river_job: River records in attempted_by
// the client (daemon) of every attempt, and outbox.daemons maps that id to the
// process. The receiver answers after 50 ms, like a real endpoint, so that each
// daemon has deliveries in flight when one is killed; it counts a webhook only
// when its answer reached a daemon that was still connected.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/jobs"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/signing"
)

const (
	daemonsCount        = 3
	daemonsPhase        = 40 * time.Second // load before the kill, and again after it
	daemonsReceiverWait = 50 * time.Millisecond
	// bouncerServerConns is PgBouncer's default_pool_size: the server
	// connections that all three daemons share.
	bouncerServerConns = 20
)

// ackReceiver holds each webhook for a delay, then answers; it counts a
// webhook-id only if the daemon was still there to take the answer.
type ackReceiver struct {
	server *http.Server
	url    string
	delay  time.Duration

	mu    sync.Mutex
	first map[string]time.Time // webhook-id → first acknowledged receipt
	last  map[string]time.Time // webhook-id → last acknowledged receipt
	count map[string]int       // webhook-id → acknowledged receipts
	cut   int                  // requests whose daemon went away before the answer
	held  int                  // requests being held now
}

func startAckReceiver(delay time.Duration) (*ackReceiver, error) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("receiver: %w", err)
	}
	r := &ackReceiver{url: "http://" + listener.Addr().String() + "/webhooks", delay: delay}
	r.reset()
	r.server = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.server.Serve(listener) }()
	return r, nil
}

func (r *ackReceiver) close() { _ = r.server.Close() }

func (r *ackReceiver) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.first, r.last, r.count, r.cut = map[string]time.Time{}, map[string]time.Time{}, map[string]int{}, 0
}

func (r *ackReceiver) serve(w http.ResponseWriter, req *http.Request) {
	// Reading the body to the end lets the server notice, and cancel the
	// request's context, when the daemon's connection goes away.
	_, _ = io.Copy(io.Discard, req.Body)
	id := req.Header.Get(signing.HeaderID)
	r.mu.Lock()
	r.held++
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.held--
		r.mu.Unlock()
	}()
	select {
	case <-time.After(r.delay):
	case <-req.Context().Done():
		r.mu.Lock()
		r.cut++
		r.mu.Unlock()
		return
	}
	w.WriteHeader(http.StatusNoContent)
	at := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.first[id]; !ok {
		r.first[id] = at
	}
	r.last[id] = at
	r.count[id]++
}

// missing returns how many of ids have not been acknowledged.
func (r *ackReceiver) missing(ids []string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, id := range ids {
		if r.count[id] == 0 {
			n++
		}
	}
	return n
}

// daemonShare is one daemon's part of a daemons run.
type daemonShare struct {
	name          string
	pid           int
	killed        bool
	before, after int64 // deliveries completed before and after the kill
	connsMax      int
	connsMean     float64
	rssMax        int64
	errorLines    int
}

// daemonsResult is one run of the scenario.
type daemonsResult struct {
	mode         string
	rate         int
	committed    int
	lost         int
	duplicates   int
	cutOff       int
	heldAtKill   int // webhooks in the receiver's hands (all daemons') at the kill
	shares       []*daemonShare
	takenOver    int64
	takeOver     time.Duration // kill → last taken-over delivery acknowledged
	backlogClear time.Duration // kill → every event committed before the kill acknowledged
	p50Before, p99Before,
	p50After, p99After time.Duration
	serverConnsMax int // PgBouncer: server connections to Postgres
	clientConnsMax int // PgBouncer: daemons' connections to PgBouncer
}

func runDaemons(ctx context.Context, pool *pgxpool.Pool, opts *options) error {
	if opts.rate < 1 {
		return errors.New("daemons: -rate must be positive")
	}
	build, err := buildDaemon(ctx)
	if err != nil {
		return err
	}
	defer build.remove()
	rcv, err := startAckReceiver(daemonsReceiverWait)
	if err != nil {
		return err
	}
	defer rcv.close()

	var results []*daemonsResult
	for _, mode := range []string{"direct", "pgbouncer"} {
		logf("daemons: %d daemons, %s, %d events/s; SIGKILL one after %s", daemonsCount, mode, opts.rate, daemonsPhase)
		rcv.reset()
		var res *daemonsResult
		_, err := withSchema(ctx, pool, func(base *benchEnv) (float64, error) {
			env, err := newProcEnv(base, opts.databaseURL)
			if err != nil {
				return 0, err
			}
			res, err = daemonsRun(ctx, env, build, rcv, opts.rate, mode)
			return 0, err
		})
		if err != nil {
			return fmt.Errorf("daemons (%s): %w", mode, err)
		}
		results = append(results, res)
	}
	report := daemonsMarkdown(results, describeMachine(ctx, pool))
	fmt.Print(report)
	if opts.out != "" {
		if err := os.WriteFile(opts.out, []byte(report), 0o644); err != nil { //nolint:gosec // a report, meant to be read
			return fmt.Errorf("write report: %w", err)
		}
	}
	var failed []string
	for _, r := range results {
		if r.lost > 0 {
			failed = append(failed, fmt.Sprintf("%s: %d of %d events never arrived", r.mode, r.lost, r.committed))
		}
		for _, s := range r.shares {
			if s.errorLines > 0 && !s.killed {
				failed = append(failed, fmt.Sprintf("%s: %s logged %d ERROR lines", r.mode, s.name, s.errorLines))
			}
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("daemons failed:\n  %s", strings.Join(failed, "\n  "))
	}
	return nil
}

// daemonsRun runs three daemons on env under load, kills one, and reads back
// who delivered what.
func daemonsRun(ctx context.Context, env *procEnv, build *daemonBuild, rcv *ackReceiver, rate int, mode string) (*daemonsResult, error) {
	if _, err := env.store.SubscriptionCreate(ctx, &outbox.SubscriptionCreateParams{URL: rcv.url, EventTypes: []string{"*"}}); err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	res := &daemonsResult{mode: "direct to Postgres", rate: rate}
	dopts := &daemonOpts{}
	var bouncer *pgBouncer
	if mode == "pgbouncer" {
		var err error
		bouncer, err = startPgBouncer(ctx, env.databaseURL)
		if err != nil {
			return nil, err
		}
		defer bouncer.stop()
		res.mode = fmt.Sprintf("through PgBouncer (transaction pooling, %d server connections)", bouncerServerConns)
		dopts = &daemonOpts{databaseURL: bouncer.url, env: []string{"OUTBOXD_POOLER=transaction"}}
	}

	daemons := make([]*daemonProc, daemonsCount)
	shares := make([]*daemonShare, daemonsCount)
	for i := range daemons {
		d, err := startDaemonProc(ctx, build, env, fmt.Sprintf("daemon-%d", i+1), dopts)
		if err != nil {
			for _, started := range daemons[:i] {
				started.kill()
			}
			return nil, err
		}
		daemons[i] = d
		shares[i] = &daemonShare{name: d.name, pid: d.pid()}
	}
	defer func() {
		for _, d := range daemons {
			select {
			case <-d.exited:
			default:
				if err := d.stop(); err != nil {
					logf("%v", err)
				}
			}
		}
	}()
	res.shares = shares

	// Sample connections and RSS while the load runs.
	sampleCtx, stopSampling := context.WithCancel(ctx)
	defer stopSampling()
	var samplerDone sync.WaitGroup
	samplerDone.Add(1)
	go func() {
		defer samplerDone.Done()
		sampleDaemons(sampleCtx, env, bouncer, daemons, shares, res)
	}()

	// Producers, evenly paced; the first daemon is killed after one phase.
	start := time.Now()
	killAt := start.Add(daemonsPhase)
	end := killAt.Add(daemonsPhase)
	type commit struct {
		id string
		at time.Time
	}
	var mu sync.Mutex
	var commits []commit
	errs := make(chan error, steadyProducers)
	var wg sync.WaitGroup
	mean := time.Duration(float64(time.Second) * float64(steadyProducers) / float64(rate))
	for c := range steadyProducers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			due := start.Add(time.Duration(c) * mean / steadyProducers)
			for i := 0; due.Before(end) && time.Now().Before(end); i, due = i+1, due.Add(mean) {
				if wait := time.Until(due); wait > 0 {
					select {
					case <-time.After(wait):
					case <-ctx.Done():
						errs <- ctx.Err()
						return
					}
				}
				id, err := publishWithUpdate(ctx, env.benchEnv, i*steadyProducers+c)
				if err != nil {
					errs <- err
					return
				}
				at := time.Now()
				mu.Lock()
				commits = append(commits, commit{id, at})
				mu.Unlock()
			}
		}()
	}
	select {
	case <-time.After(time.Until(killAt)):
	case err := <-errs:
		return nil, fmt.Errorf("publish: %w", err)
	}
	rcv.mu.Lock()
	res.heldAtKill = rcv.held
	rcv.mu.Unlock()
	daemons[0].kill()
	killed := time.Now()
	shares[0].killed = true
	logf("  killed %s (pid %d)", daemons[0].name, shares[0].pid)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}

	ids := make([]string, len(commits))
	var beforeKill []string
	for i, c := range commits {
		ids[i] = c.id
		if c.at.Before(killed) {
			beforeKill = append(beforeKill, c.id)
		}
	}
	res.committed = len(ids)
	deadline := time.Now().Add(3 * time.Minute)
	for rcv.missing(ids) > 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond) // waiting for the last webhooks
	}
	stopSampling()
	samplerDone.Wait()
	res.lost = rcv.missing(ids)

	// Latency before and after the kill, duplicates, and when the events
	// committed before the kill had all arrived.
	rcv.mu.Lock()
	var before, after []time.Duration
	var lastBefore time.Time
	for _, c := range commits {
		at, ok := rcv.first[c.id]
		if !ok {
			continue
		}
		if c.at.Before(killed) {
			before = append(before, at.Sub(c.at))
			if at.After(lastBefore) {
				lastBefore = at
			}
		} else {
			after = append(after, at.Sub(c.at))
		}
		res.duplicates += rcv.count[c.id] - 1
	}
	res.cutOff = rcv.cut
	last := maps.Clone(rcv.last)
	rcv.mu.Unlock()
	slices.Sort(before)
	slices.Sort(after)
	res.p50Before, res.p99Before = percentile(before, 0.5), percentile(before, 0.99)
	res.p50After, res.p99After = percentile(after, 0.5), percentile(after, 0.99)
	res.backlogClear = max(lastBefore.Sub(killed), 0)

	if err := readShares(ctx, env, res, killed, last); err != nil {
		return nil, err
	}
	for i, d := range daemons[1:] {
		if err := d.stop(); err != nil {
			logf("%v", err)
		}
		shares[i+1].errorLines = len(d.logLines("ERROR"))
	}
	logf("  %d events, %d lost, %d duplicates; shares before the kill %s; taken over %d, last one delivered %s after the kill",
		res.committed, res.lost, res.duplicates, shareList(res.shares, false), res.takenOver, res.takeOver.Round(time.Millisecond))
	return res, nil
}

// readShares counts each daemon's completed deliveries (River's attempted_by:
// the last attempt's client) before and after the kill, and the deliveries the
// survivors took over from the killed one.
func readShares(ctx context.Context, env *procEnv, res *daemonsResult, killed time.Time, last map[string]time.Time) error {
	rows, err := env.pool.Query(ctx, fmt.Sprintf(`
		SELECT d.pid,
			count(*) FILTER (WHERE j.finalized_at < $2),
			count(*) FILTER (WHERE j.finalized_at >= $2)
		FROM %[1]s.river_job AS j
		JOIN %[1]s.daemons AS d ON d.id = j.attempted_by[cardinality(j.attempted_by)]
		WHERE j.kind = $1 AND j.state = 'completed'
		GROUP BY d.pid`, env.schema), jobs.KindDelivery, killed)
	if err != nil {
		return fmt.Errorf("read shares: %w", err)
	}
	byPID := map[int]*daemonShare{}
	for _, s := range res.shares {
		byPID[s.pid] = s
	}
	for rows.Next() {
		var pid int
		var before, after int64
		if err := rows.Scan(&pid, &before, &after); err != nil {
			return err
		}
		if s := byPID[pid]; s != nil {
			s.before, s.after = before, after
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read shares: %w", err)
	}

	taken, err := env.pool.Query(ctx, fmt.Sprintf(`
		SELECT j.args->>'event_id' FROM %s.river_job AS j
		WHERE j.kind = $1 AND j.metadata ? 'outboxd:taken_over_from'`, env.schema), jobs.KindDelivery)
	if err != nil {
		return fmt.Errorf("read taken-over deliveries: %w", err)
	}
	eventIDs, err := pgx.CollectRows(taken, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("read taken-over deliveries: %w", err)
	}
	res.takenOver = int64(len(eventIDs))
	for _, id := range eventIDs {
		// The event's webhook-id is its id.
		if at, ok := last[id]; ok && at.Sub(killed) > res.takeOver {
			res.takeOver = at.Sub(killed)
		}
	}
	return nil
}

// sampleDaemons reads, every 500 ms, each daemon's connections to Postgres (its
// application_name) or, behind PgBouncer, the pooler's client and server
// connections, and each daemon's RSS.
func sampleDaemons(ctx context.Context, env *procEnv, bouncer *pgBouncer, daemons []*daemonProc, shares []*daemonShare, res *daemonsResult) {
	counts := make([]int, len(daemons))
	samples := 0
	for {
		select {
		case <-ctx.Done():
			for i, s := range shares {
				if samples > 0 {
					s.connsMean = float64(counts[i]) / float64(samples)
				}
			}
			return
		case <-time.After(500 * time.Millisecond):
		}
		for i, d := range daemons {
			shares[i].rssMax = max(shares[i].rssMax, d.rssBytes())
		}
		if bouncer != nil {
			clients, servers, err := bouncer.pools(ctx)
			if err == nil {
				res.clientConnsMax = max(res.clientConnsMax, clients)
				res.serverConnsMax = max(res.serverConnsMax, servers)
			}
			continue
		}
		rows, err := env.pool.Query(ctx, `SELECT application_name, count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND application_name LIKE $1 GROUP BY 1`,
			"outboxd run "+env.schema+" %")
		if err != nil {
			continue
		}
		byName := map[string]int{}
		for rows.Next() {
			var name string
			var n int
			if rows.Scan(&name, &n) == nil {
				byName[name] = n
			}
		}
		rows.Close()
		samples++
		for i, s := range shares {
			n := 0
			for name, c := range byName {
				if strings.Contains(name, fmt.Sprintf(" %d@", s.pid)) {
					n += c
				}
			}
			counts[i] += n
			s.connsMax = max(s.connsMax, n)
		}
	}
}

// pgBouncer is a PgBouncer in transaction pooling mode in front of the
// benchmark's Postgres.
type pgBouncer struct {
	cmd      *exec.Cmd
	url      string
	adminURL string
	dir      string
}

func startPgBouncer(ctx context.Context, databaseURL string) (*pgBouncer, error) {
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/pgbouncer"); err != nil {
			return nil, errors.New("pgbouncer is not installed (apt-get install pgbouncer)")
		}
	}
	target, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "outboxd-pgbouncer-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o777); err != nil { //nolint:gosec // pgbouncer may run as another user
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	config := fmt.Sprintf(`[databases]
* = host=%s port=%d

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
admin_users = %s
pool_mode = transaction
default_pool_size = %d
max_client_conn = 500
logfile = %s
pidfile =
`, target.Host, target.Port, port, filepath.Join(dir, "users.txt"), target.User, bouncerServerConns, filepath.Join(dir, "pgbouncer.log"))
	if err := os.WriteFile(filepath.Join(dir, "users.txt"), []byte(`"`+target.User+`" ""`+"\n"), 0o644); err != nil { //nolint:gosec // no secret
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "pgbouncer.ini"), []byte(config), 0o644); err != nil { //nolint:gosec // no secret
		return nil, err
	}
	args := []string{filepath.Join(dir, "pgbouncer.ini")}
	if u, err := user.Current(); err == nil && u.Uid == "0" {
		args = append([]string{"-u", "postgres"}, args...) // pgbouncer refuses to run as root
	}
	cmd := exec.Command(bin, args...) //nolint:gosec // the system's pgbouncer
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start pgbouncer: %w", err)
	}
	through, err := url.Parse(databaseURL)
	if err != nil {
		return nil, err
	}
	through.Host = fmt.Sprintf("127.0.0.1:%d", port)
	admin := *through
	admin.Path = "/pgbouncer"
	b := &pgBouncer{cmd: cmd, url: through.String(), adminURL: admin.String(), dir: dir}
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", through.Host, time.Second)
		if err == nil {
			conn.Close()
			return b, nil
		}
		if time.Now().After(deadline) {
			b.stop()
			log, _ := os.ReadFile(filepath.Join(dir, "pgbouncer.log"))
			return nil, fmt.Errorf("pgbouncer did not start: %w\n%s", err, log)
		}
		select {
		case <-ctx.Done():
			b.stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond): // polling a port that is not open yet
		}
	}
}

func (b *pgBouncer) stop() {
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	_ = b.cmd.Wait()
	_ = os.RemoveAll(b.dir)
}

// pools reads PgBouncer's SHOW POOLS: client connections (the daemons') and
// server connections (to Postgres) of the benchmark's database.
func (b *pgBouncer) pools(ctx context.Context) (clients, servers int, err error) {
	config, err := pgx.ParseConfig(b.adminURL)
	if err != nil {
		return 0, 0, err
	}
	config.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(ctx, config)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SHOW POOLS")
	if err != nil {
		return 0, 0, err
	}
	defer rows.Close()
	for rows.Next() {
		values, err := rows.Values()
		if err != nil {
			return 0, 0, err
		}
		fields := rows.FieldDescriptions()
		row := map[string]any{}
		for i, f := range fields {
			row[f.Name] = values[i]
		}
		if row["database"] == "pgbouncer" {
			continue
		}
		for _, name := range []string{"cl_active", "cl_waiting"} {
			clients += asInt(row[name])
		}
		for _, name := range []string{"sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login"} {
			servers += asInt(row[name])
		}
	}
	return clients, servers, rows.Err()
}

func asInt(v any) int {
	switch n := v.(type) {
	case int64:
		return int(n)
	case int32:
		return int(n)
	case string:
		var i int
		_, _ = fmt.Sscan(n, &i)
		return i
	}
	return 0
}

func shareList(shares []*daemonShare, after bool) string {
	var total int64
	for _, s := range shares {
		if after {
			total += s.after
		} else {
			total += s.before
		}
	}
	parts := make([]string, len(shares))
	for i, s := range shares {
		n := s.before
		if after {
			n = s.after
		}
		parts[i] = fmt.Sprintf("%.0f%%", 100*float64(n)/float64(max(total, 1)))
	}
	return strings.Join(parts, " / ")
}

func daemonsMarkdown(results []*daemonsResult, m machine) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("## Three daemons on one database, one killed")
	w("")
	w("Three `outboxd run` processes with default settings share %d events/s offered (one subscription; the receiver answers each webhook after %s). "+
		"After %s the first is killed with SIGKILL; the load goes on for %s more. A delivery's daemon is the last client in River's attempted_by.",
		results[0].rate, daemonsReceiverWait, daemonsPhase, daemonsPhase)
	w("")
	w("Machine: %s, %d cores, %s RAM; PostgreSQL %s; %s; River %s.", m.cpu, m.cores, m.memory, m.postgres, m.goVersion, m.river)
	w("")
	for _, r := range results {
		w("### %s", strings.ToUpper(r.mode[:1])+r.mode[1:])
		w("")
		w("| daemon | deliveries before the kill | share | after | share | connections to %s (max / mean) | RSS max MiB |", map[bool]string{true: "PgBouncer", false: "Postgres"}[r.serverConnsMax > 0])
		w("|---|---:|---:|---:|---:|---:|---:|")
		var totalBefore, totalAfter int64
		for _, s := range r.shares {
			totalBefore += s.before
			totalAfter += s.after
		}
		for _, s := range r.shares {
			name := s.name
			if s.killed {
				name += " (killed)"
			}
			conns := fmt.Sprintf("%d / %.1f", s.connsMax, s.connsMean)
			if r.serverConnsMax > 0 {
				conns = "see below"
			}
			w("| %s | %d | %.1f%% | %d | %.1f%% | %s | %.1f |", name, s.before, 100*float64(s.before)/float64(max(totalBefore, 1)),
				s.after, 100*float64(s.after)/float64(max(totalAfter, 1)), conns, mib(s.rssMax))
		}
		w("")
		if r.serverConnsMax > 0 {
			w("PgBouncer: at most %d client connections from the daemons, at most %d server connections to Postgres (pool size %d).", r.clientConnsMax, r.serverConnsMax, bouncerServerConns)
			w("")
		}
		w("- %d events committed in %s (%.0f/s of the %d/s offered); **%d lost**; %d duplicates (at-least-once: deliveries of the killed daemon that it could not record as done were sent again). "+
			"At the kill the receiver held %d webhooks of the three daemons.",
			r.committed, 2*daemonsPhase, float64(r.committed)/(2*daemonsPhase).Seconds(), r.rate, r.lost, r.duplicates, r.heldAtKill)
		w("- %d deliveries taken over from the killed daemon once its heartbeat had been missing for %s (`--take-over-after`); the last of them was acknowledged %s after the kill. "+
			"Every event committed before the kill had been received once %s after it.",
			r.takenOver, jobs.TakeOverAfterDefault, r.takeOver.Round(time.Millisecond), r.backlogClear.Round(time.Millisecond))
		w("- Commit→receipt p50 / p99: %s / %s for events committed before the kill, %s / %s after it.",
			ms(r.p50Before), ms(r.p99Before), ms(r.p50After), ms(r.p99After))
		w("")
	}
	return b.String()
}
