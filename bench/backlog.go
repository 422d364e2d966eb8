package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/secretbox"
	"github.com/outboxd/outboxd/outbox/signing"
)

// The backlog scenario (go run ./bench -scenario backlog): the real daemon
// (`outboxd run`, built from ./cmd/outboxd and started as its own process, so
// that its resident memory is its own) delivers to a receiver that is down while
// -backlog-events events are committed and fanned out, then comes up. The
// daemon's RSS is sampled every second throughout; the run fails unless every
// event arrives.

// backlogRSSTarget is issue 11's bound on the daemon's resident memory.
const backlogRSSTarget = 256 << 20

// backlogFlags are the daemon's flags beyond the defaults: the loopback receiver,
// a retry schedule of minutes rather than hours (so the attempts that failed
// before the circuit opened come round again within the run) and no disabling
// of the failing subscription.
var backlogFlags = []string{
	"--allow-private-targets", "127.0.0.0/8",
	"--retry-schedule", "5s,10s,20s,30s,1m,1m,1m",
	"--circuit-backoff-max", "5s",
	"--disable-after", "0",
}

type rssPhase struct {
	name     string
	took     time.Duration
	maxRSS   int64
	lastRSS  int64
	received int
}

type backlogResult struct {
	events int
	phases []rssPhase
	maxRSS int64
	// attempts is the deliveries' attempts in all (failed ones included).
	attempts, dead int64
}

func runBacklog(ctx context.Context, pool *pgxpool.Pool, opts *options) (*backlogResult, error) {
	n := opts.backlogEvents
	logf("backlog: %s events while the receiver is down, then up", thousands(float64(n)))
	dir, err := os.MkdirTemp("", "outboxd-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	exe := filepath.Join(dir, "outboxd")
	build := exec.CommandContext(ctx, "go", "build", "-o", exe, "./cmd/outboxd")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return nil, fmt.Errorf("build outboxd (run the benchmark from the repository's root): %w", err)
	}

	res := &backlogResult{events: n}
	_, err = withSchema(ctx, pool, func(env *benchEnv) (float64, error) {
		rawKey := make([]byte, secretbox.KeySize)
		_, _ = rand.Read(rawKey)
		key, err := secretbox.NewKey(rawKey)
		if err != nil {
			return 0, err
		}
		store, err := outbox.NewStore(env.pool, &outbox.StoreConfig{Schema: env.schema, Keyring: secretbox.NewKeyring(key), Guard: loopbackGuard()})
		if err != nil {
			return 0, err
		}

		// The receiver's address is fixed, but nothing listens on it yet.
		listener, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		addr := listener.Addr().String()
		_ = listener.Close()
		rcv := &receiver{url: "http://" + addr + "/webhooks"}
		rcv.server = &http.Server{Handler: http.HandlerFunc(rcv.serve), ReadHeaderTimeout: 10 * time.Second}
		defer rcv.close()
		sub, err := store.SubscriptionCreate(ctx, &outbox.SubscriptionCreateParams{URL: rcv.url, EventTypes: []string{"*"}})
		if err != nil {
			return 0, err
		}
		rcv.secrets.Store(&[]signing.Secret{sub.Secret})
		done := rcv.expect(n)

		daemon := exec.CommandContext(ctx, exe, append([]string{"run", "--http-addr", "127.0.0.1:0"}, backlogFlags...)...)
		daemon.Env = append(os.Environ(),
			"DATABASE_URL="+env.pool.Config().ConnString(), "OUTBOXD_SCHEMA="+env.schema,
			"OUTBOXD_ENCRYPTION_KEY="+base64.StdEncoding.EncodeToString(rawKey), "OUTBOXD_LOG_LEVEL=warn")
		daemon.Stderr = os.Stderr
		if err := daemon.Start(); err != nil {
			return 0, fmt.Errorf("start outboxd: %w", err)
		}
		defer func() {
			_ = daemon.Process.Signal(os.Interrupt)
			_ = daemon.Wait()
		}()
		sampler := startRSS(daemon.Process.Pid)
		defer sampler.stop()

		// Phase 1: commit the backlog in chunks, as producers would, while the
		// daemon claims and fans it out and every attempt fails.
		start := time.Now()
		for from := 1; from <= n; from += 100_000 {
			to := min(from+100_000-1, n)
			if _, err := env.pool.Exec(ctx, fmt.Sprintf(`
				INSERT INTO %[1]s.events (type, agent_id, organization_id, payload)
				SELECT 'agent.step.completed', 'agent-' || (g %% %[4]d + 1), 'org-1',
				       jsonb_build_object('step_id', 'step-' || g, 'run_id', 'run-' || g / 10, 'model', 'gpt-4o-mini',
				                          'stop_reason', 'end_turn', 'usage', jsonb_build_object('prompt_tokens', 1834, 'completion_tokens', 212))
				FROM generate_series(%[2]d, %[3]d) AS g`, env.schema, from, to, agentRows)); err != nil {
				return 0, fmt.Errorf("commit backlog: %w", err)
			}
		}
		res.phases = append(res.phases, sampler.phase("commit "+thousands(float64(n))+" events", time.Since(start), 0))
		logf("  backlog: committed in %s, daemon RSS max %s", time.Since(start).Round(time.Second), bytesText(sampler.max()))

		// Phase 2: wait until every event has its delivery (all failing).
		start = time.Now()
		for {
			var deliveries int64
			if err := env.pool.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %s.river_job WHERE kind = 'outboxd.delivery'`, env.schema)).Scan(&deliveries); err != nil {
				return 0, err
			}
			if deliveries >= int64(n) {
				break
			}
			if time.Since(start) > 30*time.Minute {
				return 0, fmt.Errorf("only %d of %d deliveries made in 30 minutes", deliveries, n)
			}
			sleepCtx(ctx, 2*time.Second)
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
		}
		res.phases = append(res.phases, sampler.phase("fan out, receiver down", time.Since(start), 0))
		logf("  backlog: fanned out in %s with the receiver down, daemon RSS max %s", time.Since(start).Round(time.Second), bytesText(sampler.max()))

		// Phase 3: the receiver comes up; the backlog drains.
		start = time.Now()
		listener, err = net.Listen("tcp", addr)
		if err != nil {
			return 0, fmt.Errorf("receiver up: %w", err)
		}
		go func() { _ = rcv.server.Serve(listener) }()
		if err := rcv.wait(ctx, done, 60*time.Minute); err != nil {
			return 0, err
		}
		res.phases = append(res.phases, sampler.phase("receiver up: drain", time.Since(start), n))
		logf("  backlog: drained in %s, daemon RSS max %s", time.Since(start).Round(time.Second), bytesText(sampler.max()))
		res.maxRSS = sampler.max()
		if err := env.pool.QueryRow(ctx, fmt.Sprintf(`SELECT coalesce(sum(attempt), 0)::bigint, count(*) FILTER (WHERE state = 'discarded')
			FROM %s.river_job WHERE kind = 'outboxd.delivery'`, env.schema)).Scan(&res.attempts, &res.dead); err != nil {
			return 0, err
		}
		return 0, nil
	})
	if err != nil {
		return nil, fmt.Errorf("backlog: %w", err)
	}
	return res, nil
}

// rssSampler reads a process's resident set size every second.
type rssSampler struct {
	pid  int
	stop func()

	mu          sync.Mutex
	phaseMax    int64
	overallMax  int64
	last        int64
	phaseStarts time.Time
}

func startRSS(pid int) *rssSampler {
	s := &rssSampler{pid: pid, phaseStarts: time.Now()}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if rss := readRSS(pid); rss > 0 {
				s.mu.Lock()
				s.last = rss
				s.phaseMax = max(s.phaseMax, rss)
				s.overallMax = max(s.overallMax, rss)
				s.mu.Unlock()
			}
			sleepCtx(ctx, time.Second)
		}
	}()
	s.stop = func() { cancel(); wg.Wait() }
	return s
}

// phase closes a phase and starts the next.
func (s *rssSampler) phase(name string, took time.Duration, received int) rssPhase {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := rssPhase{name: name, took: took, maxRSS: s.phaseMax, lastRSS: s.last, received: received}
	s.phaseMax = s.last
	return p
}

func (s *rssSampler) max() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.overallMax
}

// readRSS returns VmRSS from /proc/<pid>/status, in bytes (0 if unreadable).
func readRSS(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		var kb int64
		if _, err := fmt.Sscanf(scanner.Text(), "VmRSS: %d kB", &kb); err == nil {
			return kb << 10
		}
	}
	return 0
}

func (r *backlogResult) markdown(opts *options) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w(backlogHeading+" of %s events", thousands(float64(r.events)))
	w("")
	w("Measured by `%s` on %s.", longCommand(opts), time.Now().UTC().Format("2006-01-02"))
	w("")
	w("`outboxd run` (built from ./cmd/outboxd, its own process, default settings except `%s`)", strings.Join(backlogFlags, " "))
	w("delivers to one subscription whose receiver is down while %s events are committed and fanned", thousands(float64(r.events)))
	w("out; then the receiver comes up and the backlog drains. The daemon's RSS (VmRSS) is read every")
	w("second. Every event arrived, verified (the run fails otherwise).")
	w("")
	w("| phase | took | daemon RSS max | RSS at the end |")
	w("|---|---|---|---|")
	for _, p := range r.phases {
		w("| %s | %s | %s | %s |", p.name, p.took.Round(time.Second), bytesText(p.maxRSS), bytesText(p.lastRSS))
	}
	verdict := "yes"
	if r.maxRSS > backlogRSSTarget {
		verdict = "**no**"
	}
	w("")
	w("Largest RSS %s against the target of %s: met %s. Attempts made %s (failed ones included), dead %s.",
		bytesText(r.maxRSS), bytesText(backlogRSSTarget), verdict, thousands(float64(r.attempts)), thousands(float64(r.dead)))
	w("")
	return b.String()
}
