package main

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"
)

// fillSpec is the state of an install after hours at rate events/s: every event
// delivered to one subscription, a few of its deliveries retrying, some dead, the
// completed fan-out jobs that created them, all within River's and outboxd's
// default retention.
type fillSpec struct {
	hours float64
	rate  int
}

// The fill's shape. Its subscriptions match only the fill's own event types, so
// events a benchmark publishes afterwards (agent.step.completed) never fan out to
// them.
const (
	fillSubscriptions = 100
	fillOrganizations = 10
	fillAgents        = 5_000
	// fillChunk is how many events one INSERT statement of the fill writes.
	fillChunk = 250_000
	// fillWorkers is how many connections write chunks, and then build
	// river_job's indexes, at once: one Postgres backend per core here.
	fillWorkers = 2
	// fillFanoutBatch is how many events one completed fan-out job names.
	fillFanoutBatch = 100
	// One delivery in fillRetryEvery is retrying (scheduled hours ahead, so no
	// benchmark ever attempts it), one in fillDeadEvery dead; the rest delivered.
	fillRetryEvery = 200
	fillDeadEvery  = 1_000
)

// fillEventTypes are the filled events' types; the history filter by type asks
// for the third.
var fillEventTypes = []string{"agent.run.completed", "agent.message.created", "agent.tool.attached"}

func (s fillSpec) events() int64 { return int64(math.Round(s.hours * 3600 * float64(s.rate))) }

// fillStats says what a fill wrote and how long it took.
type fillStats struct {
	events, deliveries, fanouts int64
	took, vacuum                time.Duration
}

// fill writes spec's history into env's schema by set-based SQL: partitions for
// the whole span first, then events whose created_at is spread evenly over the
// hours before now (as the producers would have written them, then marked
// dispatched and fanned out as the relay would), each with its delivery job as the
// fan-out writes it (kind outboxd.delivery, args event_id and subscription_id)
// finished as a delivery worker leaves it, and a completed fan-out job per
// fillFanoutBatch events. Completed jobs older than River's default retention
// (24 h) and dead ones older than 7 days are left out, as River's cleaner would
// have deleted them. Ends with VACUUM ANALYZE, as autovacuum would have run.
func fill(ctx context.Context, env *benchEnv, spec fillSpec) (*fillStats, error) {
	start := time.Now()
	s := env.schema
	total := spec.events()
	if total < 1 {
		return nil, fmt.Errorf("fill: %g hours at %d events/s is no events", spec.hours, spec.rate)
	}
	var now time.Time
	if err := env.pool.QueryRow(ctx, "SELECT now()").Scan(&now); err != nil {
		return nil, err
	}
	span := time.Duration(spec.hours * float64(time.Hour))
	if _, err := env.pool.Exec(ctx, fmt.Sprintf(`
		INSERT INTO %[1]s.subscriptions (id, url, organization_id, event_types)
		SELECT 'sub_' || g, 'http://127.0.0.1:9/fill/' || g, 'org-' || (g %% %[3]d), '{%[4]s,%[5]s,%[6]s}'
		FROM generate_series(0, %[2]d - 1) AS g`,
		s, fillSubscriptions, fillOrganizations, fillEventTypes[0], fillEventTypes[1], fillEventTypes[2])); err != nil {
		return nil, fmt.Errorf("fill subscriptions: %w", err)
	}
	if _, err := env.pool.Exec(ctx, fmt.Sprintf(`SELECT count(*) FROM %s.events_partitions_ensure($1, $2)`, s), now.Add(-span), now); err != nil {
		return nil, fmt.Errorf("fill partitions: %w", err)
	}

	// River's indexes (two of them GIN) are built once after the fill rather
	// than row by row: several times faster, and as compact as after a REINDEX.
	rows, err := env.pool.Query(ctx, `SELECT c.relname::text, pg_get_indexdef(i.indexrelid) FROM pg_index AS i
		JOIN pg_class AS c ON c.oid = i.indexrelid WHERE i.indrelid = $1::regclass AND NOT i.indisprimary AND NOT i.indisunique`, s+".river_job")
	if err != nil {
		return nil, err
	}
	indexes, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) ([2]string, error) {
		var def [2]string
		err := row.Scan(&def[0], &def[1])
		return def, err
	})
	if err != nil {
		return nil, fmt.Errorf("fill: river_job's indexes: %w", err)
	}
	for _, index := range indexes {
		if _, err := env.pool.Exec(ctx, "DROP INDEX "+s+"."+index[0]); err != nil {
			return nil, err
		}
	}

	stats := &fillStats{}
	var statsMu sync.Mutex
	var written int64
	chunks := make([][2]int64, 0, total/fillChunk+1)
	for from := int64(1); from <= total; from += fillChunk {
		chunks = append(chunks, [2]int64{from, min(from+fillChunk-1, total)})
	}
	err = inParallel(ctx, fillWorkers, chunks, func(chunk [2]int64) error {
		from, to := chunk[0], chunk[1]
		err := pgx.BeginFunc(ctx, env.pool, func(tx pgx.Tx) error {
			// The fill writes columns only outboxd may set (dispatched_at,
			// fanned_out_at), as history the daemon left behind: the producer
			// checks (triggers) are off for this transaction, and so is River's
			// insert notification.
			if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
				return err
			}
			var deliveries, fanouts int64
			err := tx.QueryRow(ctx, fmt.Sprintf(`
				WITH e AS (
					INSERT INTO %[1]s.events (id, type, organization_id, agent_id, payload, created_at, dispatched_at, fanned_out_at)
					OVERRIDING SYSTEM VALUE
					SELECT g, ($5::text[])[g %% 3 + 1], 'org-' || (g %% %[2]d %% %[3]d), 'agent-' || (g %% %[4]d),
					       jsonb_build_object('step_id', 'step-' || g, 'run_id', 'run-' || g / 10, 'model', 'gpt-4o-mini',
					           'stop_reason', 'end_turn', 'usage', jsonb_build_object('prompt_tokens', 1834, 'completion_tokens', 212, 'total_tokens', 2046),
					           'messages', jsonb_build_array('message-' || g || '-a', 'message-' || g || '-b'), 'tool_calls', 1),
					       t.at, t.at + interval '5 milliseconds', t.at + interval '10 milliseconds'
					FROM generate_series($1::bigint, $2::bigint) AS g
					CROSS JOIN LATERAL (SELECT $3::timestamptz - make_interval(secs => ($4::bigint - g)::float8 / $6::float8)) AS t(at)
					RETURNING id, created_at, agent_id
				), d AS (
					INSERT INTO %[1]s.river_job (kind, queue, args, state, attempt, max_attempts, priority, attempted_at, attempted_by,
					                             created_at, scheduled_at, finalized_at, metadata, errors)
					SELECT 'outboxd.delivery', 'delivery',
					       jsonb_build_object('event_id', %[1]s.event_id(e.id, e.created_at), 'subscription_id', 'sub_' || (e.id %% %[2]d), 'agent_id', e.agent_id),
					       x.state::%[1]s.river_job_state, x.attempt, 8, 1, x.attempted_at, ARRAY['bench-fill'],
					       e.created_at + interval '10 milliseconds', x.scheduled_at, x.finalized_at,
					       jsonb_build_object('attempts', CASE WHEN x.attempt = 1
					           THEN jsonb_build_array(jsonb_build_object('attempt', 1, 'at', x.attempted_at,
					               'status_code', CASE WHEN x.state = 'completed' THEN 204 ELSE 503 END, 'duration_ms', 3.2))
					           ELSE (SELECT jsonb_agg(jsonb_build_object('attempt', a, 'at', x.attempted_at, 'status_code', 503, 'duration_ms', 3.2))
					               FROM generate_series(1, x.attempt) AS a) END),
					       CASE WHEN x.state = 'completed' THEN NULL
					            ELSE ARRAY[jsonb_build_object('at', x.attempted_at, 'attempt', x.attempt, 'error', 'receiver answered 503', 'trace', '')] END
					FROM e
					CROSS JOIN LATERAL (SELECT
					    CASE WHEN e.id %% %[7]d = 0 THEN 'discarded' WHEN e.id %% %[8]d = 0 THEN 'retryable' ELSE 'completed' END AS state,
					    CASE WHEN e.id %% %[7]d = 0 THEN 8 WHEN e.id %% %[8]d = 0 THEN 1 + (e.id / %[8]d) %% 3 ELSE 1 END AS attempt,
					    e.created_at + interval '20 milliseconds' AS attempted_at,
					    CASE WHEN e.id %% %[7]d <> 0 AND e.id %% %[8]d = 0 THEN $3::timestamptz + interval '6 hours'
					         ELSE e.created_at + interval '10 milliseconds' END AS scheduled_at,
					    CASE WHEN e.id %% %[7]d = 0 OR e.id %% %[8]d <> 0 THEN e.created_at + interval '25 milliseconds' END AS finalized_at
					) AS x
					WHERE x.state = 'retryable'
					   OR (x.state = 'completed' AND e.created_at > $3::timestamptz - interval '24 hours')
					   OR (x.state = 'discarded' AND e.created_at > $3::timestamptz - interval '7 days')
					RETURNING 1
				), f AS (
					INSERT INTO %[1]s.river_job (kind, queue, args, state, attempt, max_attempts, priority, attempted_at, attempted_by,
					                             created_at, scheduled_at, finalized_at, metadata)
					SELECT 'outboxd.fanout', 'fanout', jsonb_build_object('event_seqs', jsonb_agg(e.id ORDER BY e.id)), 'completed', 1, 25, 1,
					       max(e.created_at), ARRAY['bench-fill'], max(e.created_at), max(e.created_at), max(e.created_at) + interval '5 milliseconds', '{}'
					FROM e
					WHERE e.created_at > $3::timestamptz - interval '24 hours'
					GROUP BY e.id / %[9]d
					RETURNING 1
				)
				SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM f)`,
				s, fillSubscriptions, fillOrganizations, fillAgents, fillDeadEvery, fillRetryEvery, fillDeadEvery, fillRetryEvery, fillFanoutBatch),
				from, to, now, total, fillEventTypes, float64(spec.rate)).Scan(&deliveries, &fanouts)
			if err != nil {
				return err
			}
			statsMu.Lock()
			defer statsMu.Unlock()
			stats.deliveries += deliveries
			stats.fanouts += fanouts
			return nil
		})
		if err != nil {
			return fmt.Errorf("fill events %d–%d: %w", from, to, err)
		}
		statsMu.Lock()
		defer statsMu.Unlock()
		before := written
		written += to - from + 1
		if written/(4*fillChunk) > before/(4*fillChunk) || written == total {
			logf("  fill: %s of %s events (%s)", thousands(float64(written)), thousands(float64(total)), time.Since(start).Round(time.Second))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	stats.events = total
	// Positions are the series' numbers, in created_at order as the relay would
	// have claimed them, whichever connection wrote them; the identity goes on
	// after the last.
	if _, err := env.pool.Exec(ctx, fmt.Sprintf(`SELECT setval(pg_get_serial_sequence('%s.events', 'id'), $1)`, s), total); err != nil {
		return nil, fmt.Errorf("fill: events' identity: %w", err)
	}
	indexStart := time.Now()
	err = inParallel(ctx, fillWorkers, indexes, func(index [2]string) error {
		err := pgx.BeginFunc(ctx, env.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL maintenance_work_mem = '512MB'"); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, index[1])
			return err
		})
		if err != nil {
			return fmt.Errorf("fill: rebuild %s: %w", index[0], err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	logf("  fill: river_job's %d indexes built in %s", len(indexes), time.Since(indexStart).Round(time.Second))
	vacuumStart := time.Now()
	if _, err := env.pool.Exec(ctx, fmt.Sprintf(`VACUUM (ANALYZE) %[1]s.events, %[1]s.river_job, %[1]s.subscriptions`, s)); err != nil {
		return nil, fmt.Errorf("fill: vacuum: %w", err)
	}
	// The fill's pages are written out now rather than by a checkpoint in the
	// middle of the first measurement.
	// (CHECKPOINT needs a superuser or pg_checkpoint; without it the fill goes on.)
	if _, err := env.pool.Exec(ctx, "CHECKPOINT"); err != nil {
		logf("  fill: no CHECKPOINT (%v); the first measurement may share the disk with one", err)
	}
	stats.vacuum = time.Since(vacuumStart)
	stats.took = time.Since(start)
	logf("  fill: %s events, %s deliveries, %s fan-out jobs in %s (vacuum %s)", thousands(float64(stats.events)),
		thousands(float64(stats.deliveries)), thousands(float64(stats.fanouts)), stats.took.Round(time.Second), stats.vacuum.Round(time.Second))
	return stats, nil
}

// relationSizes are the bytes of a table (all its partitions) and its indexes.
type relationSizes struct {
	heap, indexes int64
}

// tableSizes measures outbox.events (every partition, TOAST counted as heap) and
// river_job.
func tableSizes(ctx context.Context, env *benchEnv) (events, jobs relationSizes, err error) {
	err = env.pool.QueryRow(ctx, fmt.Sprintf(`
		SELECT coalesce(sum(pg_table_size(p.relid)), 0)::bigint, coalesce(sum(pg_indexes_size(p.relid)), 0)::bigint
		FROM pg_partition_tree('%[1]s.events') AS p WHERE p.isleaf`, env.schema)).Scan(&events.heap, &events.indexes)
	if err != nil {
		return events, jobs, fmt.Errorf("size of events: %w", err)
	}
	err = env.pool.QueryRow(ctx, fmt.Sprintf(`SELECT pg_table_size('%[1]s.river_job'), pg_indexes_size('%[1]s.river_job')`, env.schema)).
		Scan(&jobs.heap, &jobs.indexes)
	if err != nil {
		return events, jobs, fmt.Errorf("size of river_job: %w", err)
	}
	return events, jobs, nil
}

// inParallel calls fn for each of items, n at a time, and returns the first
// error; after an error no further item is started.
func inParallel[T any](ctx context.Context, n int, items []T, fn func(T) error) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(n)
	for _, item := range items {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error { return fn(item) })
	}
	return g.Wait()
}
