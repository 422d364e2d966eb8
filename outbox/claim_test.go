package outbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox/outboxtest"
)

// explainingTx runs each query of a statement twice in tx: first under EXPLAIN
// ANALYZE in a savepoint that it rolls back, keeping the plan, then for real.
type explainingTx struct {
	tx    pgx.Tx
	plans []json.RawMessage
}

func (e *explainingTx) explain(ctx context.Context, sql string, args ...any) error {
	sp, err := e.tx.Begin(ctx)
	if err != nil {
		return err
	}
	defer sp.Rollback(ctx) //nolint:errcheck // undoes what EXPLAIN ANALYZE did
	var plan json.RawMessage
	if err := sp.QueryRow(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) "+sql, args...).Scan(&plan); err != nil {
		return err
	}
	e.plans = append(e.plans, plan)
	return nil
}

func (e *explainingTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return e.tx.Exec(ctx, sql, args...)
}

func (e *explainingTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := e.explain(ctx, sql, args...); err != nil {
		return nil, err
	}
	return e.tx.Query(ctx, sql, args...)
}

func (e *explainingTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := e.explain(ctx, sql, args...); err != nil {
		return errRow{err}
	}
	return e.tx.QueryRow(ctx, sql, args...)
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// scannedUnder returns the relations that the plan nodes below the first node
// of type nodeType read at least once (initplans aside).
func scannedUnder(t *testing.T, plan json.RawMessage, nodeType string) map[string]bool {
	t.Helper()
	var doc []struct {
		Plan map[string]any `json:"Plan"`
	}
	require.NoError(t, json.Unmarshal(plan, &doc))
	scanned := map[string]bool{}
	var collect func(node map[string]any)
	collect = func(node map[string]any) {
		if rel, ok := node["Relation Name"].(string); ok && node["Actual Loops"].(float64) > 0 { //nolint:forcetypeassert // EXPLAIN's JSON
			scanned[rel] = true
		}
		children, _ := node["Plans"].([]any)
		for _, child := range children {
			c := child.(map[string]any) //nolint:forcetypeassert // EXPLAIN's JSON
			if c["Parent Relationship"] != "InitPlan" {
				collect(c)
			}
		}
	}
	var find func(node map[string]any) bool
	find = func(node map[string]any) bool {
		if node["Node Type"] == nodeType {
			children, _ := node["Plans"].([]any)
			for _, child := range children {
				if c := child.(map[string]any); c["Parent Relationship"] != "InitPlan" { //nolint:forcetypeassert // EXPLAIN's JSON
					collect(c)
				}
			}
			return true
		}
		children, _ := node["Plans"].([]any)
		for _, child := range children {
			if find(child.(map[string]any)) { //nolint:forcetypeassert // EXPLAIN's JSON
				return true
			}
		}
		return false
	}
	require.True(t, find(doc[0].Plan), "no %s node in %s", nodeType, plan)
	return scanned
}

// The relay's claim marks its events dispatched by reading only the partitions
// that hold them: with a day of minute partitions, or a week of days, it must
// not probe every partition's primary key (let alone with every pair of the
// claimed ids and times, which took 1.5 s per claim of 500 in the soak).
func TestEventClaimReadsOnlyTheClaimedPartitions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := outboxtest.Store(t)
	pool := outboxtest.Pool(t)
	schema := store.Schema()

	// Minute partitions for ten minutes back and ahead, three events in each of
	// the past ones.
	_, err := pool.Exec(ctx, fmt.Sprintf(`
		SELECT %[1]s.events_partition_drop(name) FROM %[1]s.events_partitions() WHERE from_time IS NOT NULL;
		UPDATE %[1]s.settings SET event_partition_interval = '1 minute';`, schema))
	require.NoError(t, err)
	start := time.Now().Truncate(time.Minute).Add(-10 * time.Minute)
	_, err = store.EventPartitionsEnsure(ctx, start, start.Add(20*time.Minute))
	require.NoError(t, err)
	_, err = pool.Exec(ctx, fmt.Sprintf(`
		INSERT INTO %[1]s.events (type, created_at)
		SELECT 'agent.step.completed', $1::timestamptz + make_interval(mins => m, secs => s)
		FROM generate_series(0, 9) AS m, generate_series(10, 30, 10) AS s
		ORDER BY 2`, schema), start)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, fmt.Sprintf("ANALYZE %s.events", schema))
	require.NoError(t, err)
	parts, err := store.EventPartitions(ctx)
	require.NoError(t, err)
	require.Len(t, parts, 21)

	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck // the test's claims are not kept
	explaining := &explainingTx{tx: tx}
	// The oldest four: three of the first minute, one of the second.
	claim, err := store.EventClaimFanoutTx(ctx, explaining, 4)
	require.NoError(t, err)
	require.Len(t, claim.Seqs, 4)
	require.Len(t, explaining.plans, 1)
	require.Equal(t, map[string]bool{parts[0].Name: true, parts[1].Name: true},
		scannedUnder(t, explaining.plans[0], "ModifyTable"), "the update reads the claimed events' partitions only")
}
