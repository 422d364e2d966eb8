package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/jobs"
)

// results collects every run's figures.
type results struct {
	drain    []float64
	steady   []*steadyResult
	producer []*producerResult
	ceiling  []float64

	redis   []*redisResult
	fanout  []*fanoutResult
	hanging []*hangingResult
	history []historyResult
	portal  []portalPage

	perf perfResults
}

// spread is a median with its min and max.
type spread struct{ median, min, max float64 }

func spreadOf(values []float64) spread {
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	n := len(sorted)
	median := sorted[n/2]
	if n%2 == 0 {
		median = (sorted[n/2-1] + sorted[n/2]) / 2
	}
	return spread{median: median, min: sorted[0], max: sorted[n-1]}
}

func collect[T any](items []T, f func(T) float64) spread {
	values := make([]float64, len(items))
	for i, item := range items {
		values[i] = f(item)
	}
	return spreadOf(values)
}

func (s spread) count() string {
	return fmt.Sprintf("%s (%s–%s)", thousands(s.median), thousands(s.min), thousands(s.max))
}

func (s spread) millis() string {
	return fmt.Sprintf("%.1f (%.1f–%.1f)", s.median, s.min, s.max)
}

func (s spread) ratio() string {
	return fmt.Sprintf("%.2f (%.2f–%.2f)", s.median, s.min, s.max)
}

func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func toMillis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// machine describes where the figures were measured.
type machine struct {
	cpu, memory, postgres, goVersion, river string
	cores                                   int
}

func describeMachine(ctx context.Context, pool *pgxpool.Pool) machine {
	m := machine{cpu: "unknown", memory: "unknown", postgres: "unknown", river: "unknown", goVersion: runtime.Version(), cores: runtime.NumCPU()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		scanner := bufio.NewScanner(f)
		for scanner.Scan() {
			if name, value, ok := strings.Cut(scanner.Text(), ":"); ok && strings.TrimSpace(name) == "model name" {
				m.cpu = strings.TrimSpace(value)
				break
			}
		}
		_ = f.Close()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		scanner := bufio.NewScanner(f)
		for scanner.Scan() {
			var kb int64
			if _, err := fmt.Sscanf(scanner.Text(), "MemTotal: %d kB", &kb); err == nil {
				m.memory = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
				break
			}
		}
		_ = f.Close()
	}
	var version string
	if err := pool.QueryRow(ctx, "SHOW server_version").Scan(&version); err == nil {
		m.postgres = version
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == "github.com/riverqueue/river" {
				m.river = dep.Version
			}
		}
	}
	return m
}

func (r *results) markdown(opts *options, m machine) string {
	drain := spreadOf(r.drain)
	ceilingRate := spreadOf(r.ceiling)
	ratios := make([]float64, len(r.drain))
	for i := range r.drain {
		ratios[i] = r.drain[i] / r.ceiling[i]
	}
	drainRatio := spreadOf(ratios)

	published := collect(r.steady, func(s *steadyResult) float64 { return s.publishedPerSec })
	delivered := collect(r.steady, func(s *steadyResult) float64 { return s.deliveredPerSec })
	p50 := collect(r.steady, func(s *steadyResult) float64 { return toMillis(s.p50) })
	p99 := collect(r.steady, func(s *steadyResult) float64 { return toMillis(s.p99) })
	maxLatency := collect(r.steady, func(s *steadyResult) float64 { return toMillis(s.max) })

	plainTPS := collect(r.producer, func(p *producerResult) float64 { return p.plain.tps })
	outboxTPS := collect(r.producer, func(p *producerResult) float64 { return p.outbox.tps })
	tpsRatio := collect(r.producer, func(p *producerResult) float64 { return p.outbox.tps / p.plain.tps })
	plainP50 := collect(r.producer, func(p *producerResult) float64 { return toMillis(p.plain.p50) })
	plainP99 := collect(r.producer, func(p *producerResult) float64 { return toMillis(p.plain.p99) })
	outboxP50 := collect(r.producer, func(p *producerResult) float64 { return toMillis(p.outbox.p50) })
	outboxP99 := collect(r.producer, func(p *producerResult) float64 { return toMillis(p.outbox.p99) })

	command := fmt.Sprintf("go run ./bench -runs %d", opts.runs)
	if opts.quick {
		command += " -quick"
	}
	if opts.out != "" {
		command += " -out " + opts.out
	}

	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# Benchmarks")
	w("")
	w("Measured by `make bench` (`%s`) on %s. Every figure is the median of %d runs, with the", command, time.Now().UTC().Format("2006-01-02"), opts.runs)
	w("minimum and maximum in brackets. Postgres, the daemon, the producers and the receiver")
	w("share the machine, as they would on a one-box install.")
	w("")
	w("Long runs that `make bench` does not make (a soak under retention; three daemons, one killed, directly and through PgBouncer) are in [benchmarks-soak.md](benchmarks-soak.md).")
	if opts.quick {
		w("")
		w("**Quick run: sizes are small and the figures are not representative.**")
	}
	w("")
	w("## Machine")
	w("")
	w("- CPU: %s, %d cores; memory %s", m.cpu, m.cores, m.memory)
	w("- PostgreSQL %s (its configuration as installed; `synchronous_commit` on)", m.postgres)
	w("- %s, River %s", m.goVersion, m.river)
	w("")
	if goals := r.goals(); len(goals) > 0 {
		w("## Goals")
		w("")
		w("Each goal is a ratio or a figure measured in this run, beside its target (issue 13).")
		w("")
		w("| goal | target | median (min–max) | met |")
		w("|---|---|---|---|")
		for _, g := range goals {
			met := "**no**"
			if g.met {
				met = "yes"
			}
			w("| %s | %s | %s | %s |", g.name, g.target, g.measured, met)
		}
		w("")
		r.perfNotes(opts, w)
	}
	w("## Results")
	w("")
	w("| scenario | figure | median (min–max) |")
	w("|---|---|---|")
	w("| backlog drain, %s events × 1 subscription | deliveries/s | **%s** |", thousands(float64(opts.drainEvents)), drain.count())
	w("| ceiling: River alone, %s jobs, one signed POST each | jobs/s | %s |", thousands(float64(opts.drainEvents)), ceilingRate.count())
	w("| drain ÷ ceiling | ratio | %s |", drainRatio.ratio())
	w("| steady, %s events/s offered for %s | events/s committed | %s |", thousands(float64(opts.steadyRate)), opts.steadyDuration, published.count())
	w("| | deliveries/s | %s |", delivered.count())
	w("| | commit → verified receipt p50, ms | %s |", p50.millis())
	w("| | commit → verified receipt p99, ms | %s |", p99.millis())
	w("| | commit → verified receipt max, ms | %s |", maxLatency.millis())
	w("| producer, %d clients, %s each | TPS, UPDATE alone | %s |", producerClients, opts.producerTime, plainTPS.count())
	w("| | TPS, UPDATE + outbox INSERT | %s |", outboxTPS.count())
	w("| | TPS ratio (with ÷ without) | %s |", tpsRatio.ratio())
	w("| | latency p50 / p99, ms, UPDATE alone | %s / %s |", plainP50.millis(), plainP99.millis())
	w("| | latency p50 / p99, ms, UPDATE + INSERT | %s / %s |", outboxP50.millis(), outboxP99.millis())
	w("")
	w("## What was measured")
	w("")
	w("- **Backlog drain**: %s events are committed to `events` before the daemon starts; the", thousands(float64(opts.drainEvents)))
	w("  clock runs from starting the daemon to the receiver verifying the last distinct")
	w("  `webhook-id`. It covers the relay's claims, the fan-out jobs, the delivery jobs and")
	w("  their signed POSTs.")
	w("- **Ceiling**: a plain River client in a fresh schema, %d workers, FetchCooldown %s and", jobs.DeliveryWorkersDefault, jobs.FetchCooldownDefault)
	w("  FetchPollInterval %s (the daemon's defaults), works %s jobs inserted beforehand; each", jobs.FetchPollIntervalDefault, thousands(float64(opts.drainEvents)))
	w("  signs a body of the same shape and POSTs it through the daemon's HTTP client. This is")
	w("  what River itself allows on this machine with these settings; the drain ÷ ceiling")
	w("  ratio is what the outbox (relay, fan-out) costs on top.")
	w("- **Steady**: %d producers commit %s events/s between them, each transaction an `UPDATE`", steadyProducers, thousands(float64(opts.steadyRate)))
	w("  of an agent row and the outbox `INSERT`; latency runs from `COMMIT` returning to the")
	w("  receiver verifying the signature. The first %s are a warm-up, delivered but not measured.", warmup)
	w("- **Producer**: %d clients run transactions back to back for %s, first the `UPDATE` alone,", producerClients, opts.producerTime)
	w("  then the `UPDATE` plus `PublishTx` (the outbox `INSERT` with its validation trigger),")
	w("  with no daemon running: the price a producer pays for the outbox.")
	w("- The daemon runs with its default configuration (relay batch %d, poll %s, active poll", jobs.RelayBatchSizeDefault, jobs.RelayPollIntervalDefault)
	w("  %s; %d delivery workers), except that it may reach the loopback receiver. Its pool and", jobs.RelayActivePollIntervalDefault, jobs.DeliveryWorkersDefault)
	w("  the producers' share %d connections. The receiver verifies every signature", poolConns)
	w("  (Standard Webhooks v1) and the run fails if one is wrong.")
	w("")
	w("## What this means")
	w("")
	if drain.min >= floorDeliveriesS && delivered.min >= 0.95*float64(opts.steadyRate) {
		w("- The floor of %s deliveries/s is met in every run: the slowest drain delivered %s/s,", thousands(floorDeliveriesS), thousands(drain.min))
		w("  and the steady runs kept up with %s events/s offered.", thousands(float64(opts.steadyRate)))
	} else {
		w("- **The floor of %s deliveries/s is not met in every run**: the slowest drain delivered", thousands(floorDeliveriesS))
		w("  %s/s, the slowest steady run %s/s.", thousands(drain.min), thousands(delivered.min))
	}
	w("- The full pipeline reaches %.0f%% of what River alone does with the same workers and", 100*drainRatio.median)
	w("  fetch settings; the rest is the relay's claims and the fan-out jobs that share the cores.")
	w("- Publishing in the producer's transaction costs it %.0f%% of its throughput (%s → %s TPS).", 100*(1-tpsRatio.median), thousands(plainTPS.median), thousands(outboxTPS.median))
	w("- At %s events/s a committed event reaches its receiver in %.1f ms (median), %.1f ms at p99.", thousands(float64(opts.steadyRate)), p50.median, p99.median)
	w("")
	b.WriteString(r.controlMarkdown(opts))
	w("Figures on a schema filled with hours of history, a retention pass and the daemon's memory")
	w("under a backlog are in [benchmarks-scale.md](benchmarks-scale.md) (`make bench-scale`,")
	w("`make bench-backlog`), which `make bench` leaves as they are.")
	w("")
	w("Reproduce with `make bench` (it finds Postgres at `DATABASE_URL`, 127.0.0.1:5432, or")
	w("starts a throwaway cluster). Figures depend on what else the machine is doing; run it")
	w("on a quiet machine.")
	return b.String()
}
