package migrations_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/migrations"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/outboxtest"
	"github.com/outboxd/outboxd/outbox/secretbox"
	"github.com/outboxd/outboxd/outbox/signing"
)

// freshSchema names a schema that does not exist yet and drops it when the test ends.
func freshSchema(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	_, err := rand.Read(b)
	require.NoError(t, err)
	schema := "t_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		_, err := outboxtest.Pool(t).Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
		require.NoError(t, err)
	})
	return schema
}

// exists reports whether a relation (schema.name) exists.
func exists(ctx context.Context, t *testing.T, relation string) bool {
	t.Helper()
	var ok bool
	require.NoError(t, outboxtest.Pool(t).QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", relation).Scan(&ok))
	return ok
}

func schemaExists(ctx context.Context, t *testing.T, schema string) bool {
	t.Helper()
	var ok bool
	require.NoError(t, outboxtest.Pool(t).QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema).Scan(&ok))
	return ok
}

// outboxdVersions lists the outboxd migrations in this directory in order: the
// versions a fresh Up applies. Numbers are assigned ahead of merging, so a
// branch may have a gap.
func outboxdVersions(t *testing.T) []int {
	t.Helper()
	ups, err := filepath.Glob("*.up.sql")
	require.NoError(t, err)
	require.NotEmpty(t, ups)
	versions := make([]int, len(ups))
	for i, name := range ups {
		versions[i], err = strconv.Atoi(strings.SplitN(name, "_", 2)[0])
		require.NoError(t, err, name)
	}
	slices.Sort(versions)
	return versions
}

// outboxdLatest is the newest outboxd migration in this directory.
func outboxdLatest(t *testing.T) int {
	t.Helper()
	versions := outboxdVersions(t)
	return versions[len(versions)-1]
}

// outboxdDown lists the outboxd migrations newest first: the order Down removes them in.
func outboxdDown(t *testing.T) []int {
	t.Helper()
	versions := outboxdVersions(t)
	slices.Reverse(versions)
	return versions
}

// downFrom lists versions n, n-1, …, 1 (River's, newest first).
func downFrom(n int) []int {
	versions := upTo(n)
	slices.Reverse(versions)
	return versions
}

// upTo returns 1..n (River's versions have no gaps).
func upTo(n int) []int {
	versions := make([]int, n)
	for i := range versions {
		versions[i] = i + 1
	}
	return versions
}

func TestNew(t *testing.T) {
	t.Parallel()

	t.Run("RejectsInvalidSchema", func(t *testing.T) {
		t.Parallel()

		for _, schema := range []string{"Outbox", "1abc", "select", "pg_foo", "a-b", "a;DROP TABLE x"} {
			m, err := migrations.New(outboxtest.Pool(t), &migrations.Config{Schema: schema})
			require.Error(t, err, schema)
			require.Nil(t, m)
		}
	})

	t.Run("DefaultsToOutboxSchema", func(t *testing.T) {
		t.Parallel()

		// Nothing runs against the default schema here: New only builds the migrator.
		for _, config := range []*migrations.Config{nil, {}} {
			m, err := migrations.New(outboxtest.Pool(t), config)
			require.NoError(t, err)
			require.NotNil(t, m)
		}
	})
}

func TestUp(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		ctx      context.Context
		schema   string
		migrator *migrations.Migrator
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		schema := freshSchema(t)
		m, err := migrations.New(outboxtest.Pool(t), &migrations.Config{Schema: schema})
		require.NoError(t, err)
		return &testBundle{ctx: context.Background(), schema: schema, migrator: m}
	}

	t.Run("FreshSchema", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		require.False(t, schemaExists(b.ctx, t, b.schema))

		res, err := b.migrator.Up(b.ctx)
		require.NoError(t, err)
		require.True(t, schemaExists(b.ctx, t, b.schema), "Up creates the schema")
		require.Positive(t, res.RiverLatest)
		require.Equal(t, upTo(res.RiverLatest), res.River, "every River version, in order")
		require.Equal(t, outboxdVersions(t), res.Outboxd)
		require.Equal(t, outboxdLatest(t), res.OutboxdLatest)
		require.Equal(t, res.RiverLatest, res.RiverCurrent)
		require.Equal(t, res.OutboxdLatest, res.OutboxdCurrent)
		require.False(t, res.OutboxdDirty)
		require.True(t, res.UpToDate())

		for _, table := range []string{"events", "subscriptions", "subscription_secrets", "settings", "deliveries", "river_job", "river_migration", migrations.MigrationsTable} {
			require.True(t, exists(b.ctx, t, b.schema+"."+table), table)
		}
	})

	t.Run("SecondUpIsANoOp", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		first, err := b.migrator.Up(b.ctx)
		require.NoError(t, err)

		res, err := b.migrator.Up(b.ctx)
		require.NoError(t, err)
		require.Empty(t, res.River)
		require.Empty(t, res.Outboxd)
		require.Equal(t, first.Versions, res.Versions)
		require.True(t, res.UpToDate())

		status, err := b.migrator.Status(b.ctx)
		require.NoError(t, err)
		require.True(t, status.UpToDate())
		require.Equal(t, first.Versions, *status)
	})

	t.Run("StoreWorksInMigratedSchema", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		_, err := b.migrator.Up(b.ctx)
		require.NoError(t, err)
		store, err := outbox.NewStore(outboxtest.Pool(t), &outbox.StoreConfig{Schema: b.schema})
		require.NoError(t, err)
		event, err := store.Publish(b.ctx, &outbox.PublishParams{Type: "agent.step.completed"})
		require.NoError(t, err)
		got, err := store.EventGet(b.ctx, event.ID)
		require.NoError(t, err)
		require.Equal(t, event.Seq, got.Seq)
	})

	t.Run("ConcurrentMigrators", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		pool := outboxtest.NewPool(t, 4)
		other, err := migrations.New(pool, &migrations.Config{Schema: b.schema})
		require.NoError(t, err)

		ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
		defer cancel()
		var (
			wg      sync.WaitGroup
			results [2]*migrations.Result
			errs    [2]error
		)
		for i, m := range []*migrations.Migrator{b.migrator, other} {
			wg.Go(func() { results[i], errs[i] = m.Up(ctx) })
		}
		wg.Wait()
		require.NoError(t, errs[0])
		require.NoError(t, errs[1])

		// One of them applied everything, the other nothing.
		applied := len(results[0].Outboxd) + len(results[1].Outboxd)
		require.Len(t, outboxdVersions(t), applied)
		require.Equal(t, results[0].RiverLatest, len(results[0].River)+len(results[1].River))
		for _, res := range results {
			require.True(t, res.UpToDate())
		}
		status, err := other.Status(b.ctx)
		require.NoError(t, err)
		require.True(t, status.UpToDate())
	})

	t.Run("PoolOfOneConnection", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		m, err := migrations.New(outboxtest.NewPool(t, 1), &migrations.Config{Schema: b.schema})
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
		defer cancel()
		res, err := m.Up(ctx)
		require.NoError(t, err, "Up must not wait for a second connection from a pool that has one")
		require.True(t, res.UpToDate())

		res, err = m.Down(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, []int{outboxdLatest(t)}, res.Outboxd)
	})

	t.Run("MigratorsFillingTheirPool", func(t *testing.T) {
		t.Parallel()

		// As many migrators of different schemas as the pool has connections, all at once.
		const n = 3
		pool := outboxtest.NewPool(t, n)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var (
			wg   sync.WaitGroup
			errs [n]error
		)
		for i := range n {
			m, err := migrations.New(pool, &migrations.Config{Schema: freshSchema(t)})
			require.NoError(t, err)
			wg.Go(func() { _, errs[i] = m.Up(ctx) })
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
	})
}

func TestStatus(t *testing.T) {
	t.Parallel()

	t.Run("MissingSchema", func(t *testing.T) {
		t.Parallel()

		ctx := context.Background()
		schema := freshSchema(t)
		m, err := migrations.New(outboxtest.Pool(t), &migrations.Config{Schema: schema})
		require.NoError(t, err)
		status, err := m.Status(ctx)
		require.NoError(t, err)
		require.Zero(t, status.RiverCurrent)
		require.Zero(t, status.OutboxdCurrent)
		require.False(t, status.OutboxdDirty)
		require.Positive(t, status.RiverLatest)
		require.Equal(t, outboxdLatest(t), status.OutboxdLatest)
		require.False(t, status.UpToDate())
		require.False(t, schemaExists(ctx, t, schema), "Status changes nothing")
	})

	t.Run("EmptySchema", func(t *testing.T) {
		t.Parallel()

		ctx := context.Background()
		schema := freshSchema(t)
		_, err := outboxtest.Pool(t).Exec(ctx, "CREATE SCHEMA "+schema)
		require.NoError(t, err)
		m, err := migrations.New(outboxtest.Pool(t), &migrations.Config{Schema: schema})
		require.NoError(t, err)
		status, err := m.Status(ctx)
		require.NoError(t, err)
		require.Zero(t, status.RiverCurrent)
		require.Zero(t, status.OutboxdCurrent)
		require.False(t, status.UpToDate())
	})

	t.Run("Migrated", func(t *testing.T) {
		t.Parallel()

		ctx := context.Background()
		schema := outboxtest.Schema(t)
		m, err := migrations.New(outboxtest.Pool(t), &migrations.Config{Schema: schema})
		require.NoError(t, err)
		status, err := m.Status(ctx)
		require.NoError(t, err)
		require.True(t, status.UpToDate())
		require.Equal(t, status.RiverLatest, status.RiverCurrent)
		require.Equal(t, outboxdLatest(t), status.OutboxdCurrent)
	})
}

func TestUpToDate(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name     string
		versions migrations.Versions
		want     bool
	}{
		{"Latest", migrations.Versions{RiverCurrent: 6, RiverLatest: 6, OutboxdCurrent: 1, OutboxdLatest: 1}, true},
		{"RiverBehind", migrations.Versions{RiverCurrent: 5, RiverLatest: 6, OutboxdCurrent: 1, OutboxdLatest: 1}, false},
		{"OutboxdBehind", migrations.Versions{RiverCurrent: 6, RiverLatest: 6, OutboxdCurrent: 0, OutboxdLatest: 1}, false},
		{"Dirty", migrations.Versions{RiverCurrent: 6, RiverLatest: 6, OutboxdCurrent: 1, OutboxdLatest: 1, OutboxdDirty: true}, false},
		{"Nothing", migrations.Versions{RiverLatest: 6, OutboxdLatest: 1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			require.Equal(t, tt.want, tt.versions.UpToDate())
		})
	}
}

func TestDown(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		ctx      context.Context
		schema   string
		pool     *pgxpool.Pool
		migrator *migrations.Migrator
		up       *migrations.Result
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		ctx := context.Background()
		schema := freshSchema(t)
		m, err := migrations.New(outboxtest.Pool(t), &migrations.Config{Schema: schema})
		require.NoError(t, err)
		up, err := m.Up(ctx)
		require.NoError(t, err)
		return &testBundle{ctx: ctx, schema: schema, pool: outboxtest.Pool(t), migrator: m, up: up}
	}

	t.Run("OneStepThenUp", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		res, err := b.migrator.Down(b.ctx, nil)
		require.NoError(t, err)
		require.Equal(t, []int{b.up.OutboxdLatest}, res.Outboxd)
		require.Empty(t, res.River, "River is left alone")
		require.Equal(t, outboxdDown(t)[1], res.OutboxdCurrent, "the one before the latest")
		require.Equal(t, b.up.RiverLatest, res.RiverCurrent)
		require.False(t, res.UpToDate())
		require.True(t, exists(b.ctx, t, b.schema+".events"), "older migrations stay")
		require.True(t, exists(b.ctx, t, b.schema+".river_job"))

		status, err := b.migrator.Status(b.ctx)
		require.NoError(t, err)
		require.Equal(t, res.Versions, *status)

		res, err = b.migrator.Up(b.ctx)
		require.NoError(t, err)
		require.Equal(t, []int{b.up.OutboxdLatest}, res.Outboxd)
		require.Empty(t, res.River)
		require.True(t, res.UpToDate())
	})

	t.Run("EveryStepThenUp", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		res, err := b.migrator.Down(b.ctx, &migrations.DownOpts{Steps: len(outboxdVersions(t))})
		require.NoError(t, err)
		require.Equal(t, outboxdDown(t), res.Outboxd)
		require.Empty(t, res.River, "River is left alone")
		for _, table := range []string{"events", "subscriptions", "subscription_secrets", "settings", "deliveries"} {
			require.False(t, exists(b.ctx, t, b.schema+"."+table), table)
		}
		require.True(t, exists(b.ctx, t, b.schema+".river_job"))
		var functions int
		require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
			WHERE n.nspname = $1 AND p.proname IN ('publish', 'publish_event', 'new_id', 'wake', 'events_validate')`, b.schema).Scan(&functions))
		require.Zero(t, functions, "outboxd's functions are gone too")

		status, err := b.migrator.Status(b.ctx)
		require.NoError(t, err)
		require.Equal(t, res.Versions, *status)

		res, err = b.migrator.Up(b.ctx)
		require.NoError(t, err)
		require.Equal(t, outboxdVersions(t), res.Outboxd)
		require.Empty(t, res.River)
		require.True(t, res.UpToDate())
		require.True(t, exists(b.ctx, t, b.schema+".events"))
	})

	t.Run("ExplicitSteps", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		res, err := b.migrator.Down(b.ctx, &migrations.DownOpts{Steps: len(outboxdVersions(t))})
		require.NoError(t, err)
		require.Equal(t, outboxdDown(t), res.Outboxd)
		require.Zero(t, res.OutboxdCurrent)

		// Nothing left to roll back: a clear error, and nothing changes.
		_, err = b.migrator.Down(b.ctx, &migrations.DownOpts{Steps: 1})
		var stepsErr *migrations.StepsError
		require.ErrorAs(t, err, &stepsErr)
		require.Equal(t, "nothing to undo: no outboxd migration is applied in schema "+b.schema, err.Error())
		status, err := b.migrator.Status(b.ctx)
		require.NoError(t, err)
		require.Zero(t, status.OutboxdCurrent)
		require.Equal(t, b.up.RiverLatest, status.RiverCurrent)
	})

	t.Run("All", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		res, err := b.migrator.Down(b.ctx, &migrations.DownOpts{All: true})
		require.NoError(t, err)
		require.Equal(t, outboxdDown(t), res.Outboxd)
		require.ElementsMatch(t, upTo(b.up.RiverLatest), res.River, "every River version is removed")
		require.Zero(t, res.RiverCurrent)
		require.Zero(t, res.OutboxdCurrent)

		require.False(t, exists(b.ctx, t, b.schema+".events"))
		require.False(t, exists(b.ctx, t, b.schema+".river_job"))
		require.False(t, exists(b.ctx, t, b.schema+".river_migration"))
		require.True(t, res.SchemaDropped)
		require.False(t, schemaExists(b.ctx, t, b.schema), "nothing else was in it, so the schema goes too")

		status, err := b.migrator.Status(b.ctx)
		require.NoError(t, err)
		require.Zero(t, status.RiverCurrent)
		require.Zero(t, status.OutboxdCurrent)

		// And everything comes back.
		res, err = b.migrator.Up(b.ctx)
		require.NoError(t, err)
		require.Equal(t, upTo(b.up.RiverLatest), res.River)
		require.Equal(t, outboxdVersions(t), res.Outboxd)
		require.True(t, res.UpToDate())
	})

	// Migration 7 turns the events' identity column into a sequence the trigger
	// draws from, and its down turns it back: positions continue both ways.
	t.Run("EventPositionsContinueAcrossVersion7", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		store, err := outbox.NewStore(b.pool, &outbox.StoreConfig{Schema: b.schema})
		require.NoError(t, err)
		var seqs []int64
		publish := func() {
			t.Helper()
			var seq int64
			require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT id FROM "+b.schema+".publish_event('agent.step.completed')").Scan(&seq))
			seqs = append(seqs, seq)
		}
		publish()
		_, err = b.migrator.Down(b.ctx, &migrations.DownOpts{Steps: b.up.OutboxdLatest - 6})
		require.NoError(t, err)
		publish()
		publish()
		_, err = b.migrator.Up(b.ctx)
		require.NoError(t, err)
		publish()
		_, err = store.Publish(b.ctx, &outbox.PublishParams{Type: "agent.step.completed"})
		require.NoError(t, err)
		require.True(t, slices.IsSorted(seqs), "%v", seqs)
		require.Len(t, slices.Compact(slices.Clone(seqs)), len(seqs), "no position is given twice: %v", seqs)
	})

	t.Run("TooManyStepsChangeNothing", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		_, err := b.migrator.Down(b.ctx, &migrations.DownOpts{Steps: 2})
		require.NoError(t, err)
		applied := b.up.OutboxdLatest - 2

		_, err = b.migrator.Down(b.ctx, &migrations.DownOpts{Steps: applied + 5})
		var stepsErr *migrations.StepsError
		require.ErrorAs(t, err, &stepsErr)
		require.Equal(t, &migrations.StepsError{Schema: b.schema, Requested: applied + 5, Applied: applied}, stepsErr)
		require.Equal(t, fmt.Sprintf("only %d outboxd migrations are applied in schema %s, so %d cannot be rolled back; nothing was changed",
			applied, b.schema, applied+5), err.Error())
		status, err := b.migrator.Status(b.ctx)
		require.NoError(t, err)
		require.Equal(t, applied, status.OutboxdCurrent, "nothing was rolled back")
		require.True(t, exists(b.ctx, t, b.schema+".events"))
	})

	t.Run("AllAfterStepsRemovesEverything", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		_, err := b.migrator.Down(b.ctx, &migrations.DownOpts{Steps: b.up.OutboxdLatest})
		require.NoError(t, err)
		require.True(t, exists(b.ctx, t, b.schema+"."+migrations.MigrationsTable))

		plan, err := b.migrator.PlanDown(b.ctx, &migrations.DownOpts{All: true})
		require.NoError(t, err)
		require.Len(t, plan.Migrations, b.up.RiverLatest, "only River's are left")
		require.True(t, plan.DropSchema)

		res, err := b.migrator.Down(b.ctx, &migrations.DownOpts{All: true})
		require.NoError(t, err)
		require.Empty(t, res.Outboxd)
		require.Equal(t, downFrom(b.up.RiverLatest), res.River)
		require.True(t, res.SchemaDropped)
		require.False(t, schemaExists(b.ctx, t, b.schema))

		// And again, on nothing: nothing to do, no error.
		res, err = b.migrator.Down(b.ctx, &migrations.DownOpts{All: true})
		require.NoError(t, err)
		require.Empty(t, res.Outboxd)
		require.Empty(t, res.River)
		require.False(t, res.SchemaDropped)
		require.False(t, schemaExists(b.ctx, t, b.schema), "Down creates nothing")
	})

	t.Run("AllKeepsASchemaWithSomethingElse", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		_, err := b.pool.Exec(b.ctx, "CREATE TABLE "+b.schema+".mine (id int)")
		require.NoError(t, err)
		res, err := b.migrator.Down(b.ctx, &migrations.DownOpts{All: true})
		require.NoError(t, err)
		require.False(t, res.SchemaDropped)
		require.Equal(t, "it holds objects that are not outboxd's", res.SchemaKept)
		require.True(t, exists(b.ctx, t, b.schema+".mine"), "what is not outboxd's stays")
		require.False(t, exists(b.ctx, t, b.schema+"."+migrations.MigrationsTable), "outboxd's bookkeeping goes")
		var left int
		require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relname <> 'mine'`, b.schema).Scan(&left))
		require.Zero(t, left, "none of outboxd's or River's relations are left")
	})

	t.Run("DataGoesWithIt", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		store, err := outbox.NewStore(b.pool, &outbox.StoreConfig{Schema: b.schema})
		require.NoError(t, err)
		event, err := store.Publish(b.ctx, &outbox.PublishParams{Type: "agent.step.completed"})
		require.NoError(t, err)

		_, err = b.migrator.Down(b.ctx, &migrations.DownOpts{Steps: len(outboxdVersions(t))})
		require.NoError(t, err)
		_, err = b.migrator.Up(b.ctx)
		require.NoError(t, err)
		_, err = store.EventGet(b.ctx, event.ID)
		require.ErrorIs(t, err, outbox.ErrNotFound)
	})
}

func TestCustomSchemaLeavesOthersAlone(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	a := outboxtest.Schema(t)
	b := outboxtest.Schema(t)

	m, err := migrations.New(outboxtest.Pool(t), &migrations.Config{Schema: a})
	require.NoError(t, err)
	_, err = m.Down(ctx, &migrations.DownOpts{All: true})
	require.NoError(t, err)

	require.False(t, exists(ctx, t, a+".events"))
	require.True(t, exists(ctx, t, b+".events"), "another schema is untouched")
	require.True(t, exists(ctx, t, b+".river_job"))

	// The functions of a schema refer to its own tables, not to "outbox.".
	var eventID string
	require.NoError(t, outboxtest.Pool(t).QueryRow(ctx, "SELECT "+b+".publish('agent.step.completed')").Scan(&eventID))
	var n int
	require.NoError(t, outboxtest.Pool(t).QueryRow(ctx, "SELECT count(*) FROM "+b+".event($1)", eventID).Scan(&n))
	require.Equal(t, 1, n)
}

// Custom header values written before migration 7 are plaintext: Up keeps them
// working and encrypts them when it has the key; Down below 7 decrypts them
// first, or refuses.
func TestHeadersAcrossVersion7(t *testing.T) {
	t.Parallel()

	const legacy = `{"Authorization": "Bearer legacy_h10_value", "X-Tenant": "t1"}`
	type testBundle struct {
		ctx     context.Context
		schema  string
		pool    *pgxpool.Pool
		keyring *secretbox.Keyring
		keyless *migrations.Migrator
		keyed   *migrations.Migrator
		store   *outbox.Store
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		ctx := context.Background()
		schema := freshSchema(t)
		pool := outboxtest.Pool(t)
		keyring := outboxtest.Keyring(t)
		keyless, err := migrations.New(pool, &migrations.Config{Schema: schema})
		require.NoError(t, err)
		keyed, err := migrations.New(pool, &migrations.Config{Schema: schema, Keyring: keyring})
		require.NoError(t, err)
		store, err := outbox.NewStore(pool, &outbox.StoreConfig{Schema: schema, Keyring: keyring})
		require.NoError(t, err)
		_, err = keyless.Up(ctx)
		require.NoError(t, err)
		return &testBundle{ctx: ctx, schema: schema, pool: pool, keyring: keyring, keyless: keyless, keyed: keyed, store: store}
	}
	rows := func(t *testing.T, b *testBundle) string {
		t.Helper()
		var text string
		require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT coalesce(string_agg(s::text, ' '), '') FROM "+b.schema+".subscriptions AS s").Scan(&text))
		return text
	}
	version := func(t *testing.T, b *testBundle) migrations.Versions {
		t.Helper()
		v, err := b.keyless.Status(b.ctx)
		require.NoError(t, err)
		return *v
	}

	t.Run("UpKeepsPlaintextWorkingAndSealsItWithTheKey", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		res, err := b.keyless.Down(b.ctx, &migrations.DownOpts{Steps: outboxdLatest(t) - 6})
		require.NoError(t, err)
		require.Equal(t, 6, res.OutboxdCurrent)
		var id string
		require.NoError(t, b.pool.QueryRow(b.ctx, "INSERT INTO "+b.schema+".subscriptions (url, headers) VALUES ('https://example.com/h', $1) RETURNING id", legacy).Scan(&id))
		_, err = b.pool.Exec(b.ctx, "INSERT INTO "+b.schema+".subscriptions (url) VALUES ('https://example.com/none')")
		require.NoError(t, err)

		// Without the key: migrated, still delivered, shown by name, and reported.
		res, err = b.keyless.Up(b.ctx)
		require.NoError(t, err)
		require.True(t, res.UpToDate())
		require.EqualValues(t, 1, res.HeadersPlaintext)
		require.Zero(t, res.HeadersSealed)
		sub, err := b.store.SubscriptionGet(b.ctx, id)
		require.NoError(t, err)
		require.Equal(t, []string{"Authorization", "X-Tenant"}, sub.HeaderNames)
		target, err := b.store.DeliveryTarget(b.ctx, "evt_none", id)
		require.NoError(t, err)
		require.Equal(t, map[string]string{"Authorization": "Bearer legacy_h10_value", "X-Tenant": "t1"}, target.Headers)
		require.Contains(t, rows(t, b), "legacy_h10_value")

		// With the key, even with nothing left to migrate: sealed.
		res, err = b.keyed.Up(b.ctx)
		require.NoError(t, err)
		require.Empty(t, res.Outboxd)
		require.EqualValues(t, 1, res.HeadersSealed)
		require.Zero(t, res.HeadersPlaintext)
		require.NotContains(t, rows(t, b), "legacy_h10_value")
		target, err = b.store.DeliveryTarget(b.ctx, "evt_none", id)
		require.NoError(t, err)
		require.Equal(t, map[string]string{"Authorization": "Bearer legacy_h10_value", "X-Tenant": "t1"}, target.Headers)
	})

	t.Run("DownDecryptsFirstOrRefuses", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		created, err := b.store.SubscriptionCreate(b.ctx, &outbox.SubscriptionCreateParams{
			URL: "https://example.com/h", Headers: map[string]string{"Authorization": "Bearer sealed_h10_value"},
		})
		require.NoError(t, err)
		steps := outboxdLatest(t) - 6

		_, err = b.keyless.Down(b.ctx, &migrations.DownOpts{Steps: steps})
		require.ErrorContains(t, err, "1 subscriptions have encrypted custom header values")
		require.ErrorContains(t, err, "set OUTBOXD_ENCRYPTION_KEY")
		_, err = b.keyless.Down(b.ctx, &migrations.DownOpts{All: true})
		require.ErrorContains(t, err, "nothing was rolled back")
		v := version(t, b)
		require.True(t, v.UpToDate(), "nothing changed, and the version is not dirty")

		// A rollback that stays at or above 7 needs no key.
		if v.OutboxdLatest > 7 {
			_, err = b.keyless.Down(b.ctx, &migrations.DownOpts{Steps: steps - 1})
			require.NoError(t, err)
		}

		res, err := b.keyed.Down(b.ctx, &migrations.DownOpts{Steps: version(t, b).OutboxdCurrent - 6})
		require.NoError(t, err)
		require.EqualValues(t, 1, res.HeadersUnsealed)
		require.Equal(t, 6, res.OutboxdCurrent)
		var headers string
		require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT headers::text FROM "+b.schema+".subscriptions WHERE id = $1", created.ID).Scan(&headers))
		require.JSONEq(t, `{"Authorization": "Bearer sealed_h10_value"}`, headers, "version 6 has them in plaintext")

		res, err = b.keyed.Up(b.ctx)
		require.NoError(t, err)
		require.EqualValues(t, 1, res.HeadersSealed)
		require.NotContains(t, rows(t, b), "sealed_h10_value")
		target, err := b.store.DeliveryTarget(b.ctx, "evt_none", created.ID)
		require.NoError(t, err)
		require.Equal(t, map[string]string{"Authorization": "Bearer sealed_h10_value"}, target.Headers)
		require.Equal(t, []signing.Secret{created.Secret}, target.Secrets)
	})
}

func TestPlanDown(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	schema := outboxtest.Schema(t)
	m, err := migrations.New(outboxtest.Pool(t), &migrations.Config{Schema: schema})
	require.NoError(t, err)
	latest := outboxdLatest(t)

	plan, err := m.PlanDown(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, schema, plan.Schema)
	require.Len(t, plan.Migrations, 1)
	require.Equal(t, migrations.Migration{Line: "outboxd", Version: latest, Name: plan.Migrations[0].Name}, plan.Migrations[0])
	require.NotEmpty(t, plan.Migrations[0].Name)
	require.False(t, plan.DropSchema)

	plan, err = m.PlanDown(ctx, &migrations.DownOpts{Steps: 2})
	require.NoError(t, err)
	require.Equal(t, []int{latest, latest - 1}, []int{plan.Migrations[0].Version, plan.Migrations[1].Version})
	require.Equal(t, "outboxd 1 (core)", func() string {
		all, err := m.PlanDown(ctx, &migrations.DownOpts{Steps: latest})
		require.NoError(t, err)
		return all.Migrations[latest-1].String()
	}())

	plan, err = m.PlanDown(ctx, &migrations.DownOpts{All: true})
	require.NoError(t, err)
	require.Len(t, plan.Migrations, latest+plan.RiverLatest, "every migration of both lines")
	require.Equal(t, "outboxd", plan.Migrations[0].Line)
	require.Equal(t, migrations.Migration{Line: "river", Version: 1, Name: "create river migration"}, plan.Migrations[len(plan.Migrations)-1])
	require.True(t, plan.DropSchema)

	_, err = m.PlanDown(ctx, &migrations.DownOpts{Steps: latest + 1})
	require.ErrorAs(t, err, new(*migrations.StepsError))

	status, err := m.Status(ctx)
	require.NoError(t, err)
	require.True(t, status.UpToDate(), "planning changes nothing")
}

func TestCheck(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	schema := outboxtest.Schema(t)
	m, err := migrations.New(outboxtest.Pool(t), &migrations.Config{Schema: schema})
	require.NoError(t, err)
	require.NoError(t, m.Check(ctx))

	_, err = m.Down(ctx, nil)
	require.NoError(t, err)
	latest := outboxdLatest(t)
	require.EqualError(t, m.Check(ctx), fmt.Sprintf("schema %s is at outboxd %d and River 8, but this outboxd needs outboxd %d and River 8: "+
		"it was rolled back; run `outboxd migrate up`", schema, latest-1, latest))

	_, err = m.Down(ctx, &migrations.DownOpts{All: true})
	require.NoError(t, err)
	require.ErrorContains(t, m.Check(ctx), "is at outboxd 0 and River 0")

	_, err = m.Up(ctx)
	require.NoError(t, err)
	require.NoError(t, m.Check(ctx))
}

func TestUpLeavesANewerSchemaAlone(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	schema := outboxtest.Schema(t)
	pool := outboxtest.Pool(t)
	m, err := migrations.New(pool, &migrations.Config{Schema: schema})
	require.NoError(t, err)
	latest := outboxdLatest(t)

	// As a newer outboxd would leave it, during a rolling upgrade.
	_, err = pool.Exec(ctx, "UPDATE "+schema+"."+migrations.MigrationsTable+" SET version = $1", latest+1)
	require.NoError(t, err)
	res, err := m.Up(ctx)
	require.NoError(t, err, "an older daemon's run --migrate must still start")
	require.Empty(t, res.Outboxd)
	require.Equal(t, latest+1, res.OutboxdCurrent)
	require.NoError(t, m.Check(ctx), "a newer schema has everything this build needs")
}

func TestActivity(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	schema := outboxtest.Schema(t)
	m, err := migrations.New(outboxtest.Pool(t), &migrations.Config{Schema: schema})
	require.NoError(t, err)

	activity, err := m.Activity(ctx)
	require.NoError(t, err)
	require.Equal(t, &migrations.Activity{}, activity)
	require.False(t, activity.Running())

	// Two daemons' connections, as `outboxd run` names them; one of another schema.
	connect := func(name string) {
		for range 2 {
			config, err := pgx.ParseConfig(outboxtest.DatabaseURL())
			require.NoError(t, err)
			config.RuntimeParams["application_name"] = name
			conn, err := pgx.ConnectConfig(ctx, config)
			require.NoError(t, err)
			t.Cleanup(func() { _ = conn.Close(context.WithoutCancel(ctx)) })
		}
	}
	connect(migrations.DaemonApplicationName(schema, "1@host-a"))
	connect(migrations.DaemonApplicationName(schema, "2@host-b"))
	connect(migrations.DaemonApplicationName(schema+"x", "3@host-c"))

	activity, err = m.Activity(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, activity.Daemons)
	require.Equal(t, 4, activity.Connections)
	require.True(t, activity.Running())

	require.Len(t, migrations.DaemonApplicationName(schema, strings.Repeat("h", 100)), 63, "Postgres keeps 63 bytes")
}

// TestEventsPartitionedKeepsExistingEvents upgrades a schema with events from
// before migration 10 (a stored public id, one unpartitioned table) and checks
// that every event keeps its position, public id, state and idempotency key.
func TestEventsPartitionedKeepsExistingEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, schema, m := upToLatest(ctx, t)
	latest := outboxdLatest(t)
	_, err := m.Down(ctx, &migrations.DownOpts{Steps: latest - 9})
	require.NoError(t, err)
	status, err := m.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, 9, status.OutboxdCurrent)

	// Events as an older outboxd kept them: one delivered two days ago, one
	// claimed by the relay but not yet fanned out, one waiting, one with a key.
	rows := []struct {
		eventType, key string
		age            time.Duration
		dispatched     bool
	}{
		{"agent.step.completed", "", 48 * time.Hour, true},
		{"agent.run.completed", "", time.Hour, true},
		{"agent.tool.attached", "", time.Minute, false},
		{"agent.step.failed", "step-9", time.Minute, false},
	}
	type old struct {
		seq     int64
		eventID string
	}
	var olds []old
	for _, r := range rows {
		var o old
		err := pool.QueryRow(ctx, `INSERT INTO `+schema+`.events (type, idempotency_key, created_at)
			VALUES ($1, nullif($2, ''), now() - make_interval(secs => $3)) RETURNING id, event_id`,
			r.eventType, r.key, r.age.Seconds()).Scan(&o.seq, &o.eventID)
		require.NoError(t, err)
		if r.dispatched {
			_, err = pool.Exec(ctx, `UPDATE `+schema+`.events SET dispatched_at = now() WHERE id = $1`, o.seq)
			require.NoError(t, err)
		}
		olds = append(olds, o)
	}

	_, err = m.Up(ctx)
	require.NoError(t, err)
	store, err := outbox.NewStore(pool, &outbox.StoreConfig{Schema: schema})
	require.NoError(t, err)

	for i, o := range olds {
		event, err := store.EventGet(ctx, o.eventID)
		require.NoError(t, err, "event %d keeps its public id", i)
		require.Equal(t, o.seq, event.Seq)
		require.Equal(t, rows[i].eventType, event.Type)
		require.Equal(t, rows[i].dispatched, event.DispatchedAt != nil)
	}
	parts, err := store.EventPartitions(ctx)
	require.NoError(t, err)
	require.Len(t, parts, 5, "the day of the oldest event, today and three days ahead")

	// Waiting events are still the relay's; new ones come after the old ones.
	backlog, err := store.EventBacklog(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, backlog.Undispatched)
	fresh, err := store.Publish(ctx, &outbox.PublishParams{Type: "agent.step.completed"})
	require.NoError(t, err)
	require.Greater(t, fresh.Seq, olds[len(olds)-1].seq)
	require.NotEqual(t, olds[0].eventID[16:24], fresh.ID[16:24], "a new id carries the installation's tag, an old one random digits")

	// The key still names its first event.
	again, err := store.Publish(ctx, &outbox.PublishParams{Type: "agent.step.failed", IdempotencyKey: "step-9"})
	require.NoError(t, err)
	require.Equal(t, olds[3].eventID, again.ID)

	// And back: every event keeps its id in the old table, the new ones their derived id.
	_, err = m.Down(ctx, &migrations.DownOpts{Steps: latest - 9})
	require.NoError(t, err)
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM `+schema+`.events WHERE event_id = ANY($1)`,
		[]string{olds[0].eventID, olds[3].eventID, fresh.ID}).Scan(&n))
	require.Equal(t, 3, n)
}

// Migration 13 writes the event's agent into the args of the deliveries an
// older outboxd made that are not delivered (delivered ones age out), builds the
// agent index, and going down drops the index only.
func TestDeliveryAgentIndexBackfillsUnfinishedDeliveries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, schema, m := upToLatest(ctx, t)
	latest := outboxdLatest(t)
	_, err := m.Down(ctx, &migrations.DownOpts{Steps: latest - 11})
	require.NoError(t, err)

	store, err := outbox.NewStore(pool, &outbox.StoreConfig{Schema: schema})
	require.NoError(t, err)
	withAgent, err := store.Publish(ctx, &outbox.PublishParams{Type: "agent.step.completed", AgentID: "agent-7"})
	require.NoError(t, err)
	withoutAgent, err := store.Publish(ctx, &outbox.PublishParams{Type: "agent.step.completed"})
	require.NoError(t, err)
	// Deliveries as the fan-out before migration 13 wrote them: no agent in args.
	delivery := func(eventID, state string) int64 {
		var id int64
		require.NoError(t, pool.QueryRow(ctx, `INSERT INTO `+schema+`.river_job (kind, queue, args, state, max_attempts, finalized_at)
			VALUES ('outboxd.delivery', 'delivery', jsonb_build_object('event_id', $1::text, 'subscription_id', 'sub_1'), $2::`+schema+`.river_job_state, 8,
			        CASE WHEN $2 IN ('completed', 'discarded') THEN now() END) RETURNING id`, eventID, state).Scan(&id))
		return id
	}
	dead := delivery(withAgent.ID, "discarded")
	retrying := delivery(withAgent.ID, "retryable")
	delivered := delivery(withAgent.ID, "completed")
	noAgent := delivery(withoutAgent.ID, "discarded")

	_, err = m.Up(ctx)
	require.NoError(t, err)
	agentOf := func(id int64) *string {
		var agent *string
		require.NoError(t, pool.QueryRow(ctx, `SELECT args ->> 'agent_id' FROM `+schema+`.river_job WHERE id = $1`, id).Scan(&agent))
		return agent
	}
	for _, id := range []int64{dead, retrying} {
		require.NotNil(t, agentOf(id))
		require.Equal(t, "agent-7", *agentOf(id))
	}
	require.Nil(t, agentOf(delivered), "delivered deliveries are left as they were")
	require.Nil(t, agentOf(noAgent))

	list, err := store.DeliveryList(ctx, &outbox.DeliveryListParams{AgentID: "agent-7"})
	require.NoError(t, err)
	ids := make([]int64, len(list))
	for i, d := range list {
		ids[i] = d.ID
	}
	require.Equal(t, []int64{retrying, dead}, ids)

	require.True(t, indexExists(t, pool, schema, "river_job_outboxd_delivery_agent"))
	_, err = m.Down(ctx, &migrations.DownOpts{Steps: latest - 12})
	require.NoError(t, err)
	require.False(t, indexExists(t, pool, schema, "river_job_outboxd_delivery_agent"))
	require.Equal(t, "agent-7", *agentOf(dead), "going down keeps the args")
}

// Migration 14 trades River's GIN indexes on args and metadata, which no query
// used, for a btree index on deliveries' event ids, which the history's event
// filter walks; going down brings them back.
func TestRiverJobWithoutGIN(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, schema, m := upToLatest(ctx, t)
	exists := func(index string) bool { return indexExists(t, pool, schema, index) }
	require.False(t, exists("river_job_args_index"))
	require.False(t, exists("river_job_metadata_index"))
	require.True(t, exists("river_job_outboxd_delivery_event"))

	// The event filter walks one event's deliveries newest first through the
	// new index, as the history's first page asks.
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck // read-only
	_, err = tx.Exec(ctx, "SET LOCAL enable_seqscan = off")
	require.NoError(t, err)
	var plan string
	require.NoError(t, tx.QueryRow(ctx, `EXPLAIN (FORMAT JSON) SELECT id FROM `+schema+`.river_job
		WHERE kind = 'outboxd.delivery' AND args ->> 'event_id' = 'evt_1' ORDER BY id DESC LIMIT 51`).Scan(&plan))
	require.Contains(t, plan, "river_job_outboxd_delivery_event")
	require.NotContains(t, plan, `"Node Type": "Sort"`, "the index gives the order: no sort of the event's deliveries")
	require.NoError(t, tx.Rollback(ctx))

	_, err = m.Down(ctx, &migrations.DownOpts{Steps: outboxdLatest(t) - 13})
	require.NoError(t, err)
	require.True(t, exists("river_job_args_index"))
	require.True(t, exists("river_job_metadata_index"))
	require.False(t, exists("river_job_outboxd_delivery_event"))
}

// Migration 15: outbox.event_seq() and outbox.event_time() give the answers they
// gave before, for this installation's ids, other installations' and anything
// else, and Postgres now inlines them into the query instead of calling them.
func TestEventIDFunctionsInline(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, schema, m := upToLatest(ctx, t)
	var tag string
	require.NoError(t, pool.QueryRow(ctx, "SELECT event_id_tag FROM "+schema+".settings").Scan(&tag))
	other := "0123abcd"
	if tag == other {
		other = "89abcdef"
	}
	ids := []string{
		"evt_0190f1a2b3c4" + tag + "00000000002a",   // ours: position 42
		"evt_0190f1a2b3c4" + tag + "ffffffffffff",   // ours, the largest position
		"evt_0190f1a2b3c4" + other + "00000000002a", // another installation's: a time, no position
		"evt_0190F1a2b3c4" + tag + "00000000002a",   // upper-case hex is not an id
		"evt_0190f1a2b3c4" + tag + "00000000002g",   // nor is a non-hex digit
		"evt_0190f1a2b3c4" + tag + "00000000002a0",  // nor one digit too many
		"evt_0190f1a2b3c4" + tag + "00000000002",    // or too few
		"evt_0190f1a2b3c4",                          // only a time
		"evt_0190f1a2b3c",                           // not even that
		"evt_é190f1a2b3c4" + tag + "00000000002a",   // a multi-byte character
		"ev_0190f1a2b3c4" + tag + "00000000002a",    // not evt_
		"1f0c7a8e-legacy-id", "", "evt_",
	}
	type answer struct {
		Seq  *int64
		Time *time.Time
	}
	read := func() []answer {
		t.Helper()
		var out []answer
		for _, id := range append(ids, "") {
			var a answer
			arg := any(id)
			if len(out) == len(ids) {
				arg = nil // NULL in, NULL out
			}
			require.NoError(t, pool.QueryRow(ctx, fmt.Sprintf("SELECT %[1]s.event_seq($1), %[1]s.event_time($1)", schema), arg).Scan(&a.Seq, &a.Time))
			out = append(out, a)
		}
		return out
	}
	after := read()
	require.Equal(t, int64(42), *after[0].Seq)
	require.Equal(t, int64(0xffffffffffff), *after[1].Seq)
	require.Nil(t, after[2].Seq, "another installation's id has no position here")
	require.Equal(t, time.UnixMilli(0x0190f1a2b3c4).UTC(), after[2].Time.UTC())
	require.Equal(t, answer{}, after[len(after)-1])

	var plan string
	require.NoError(t, pool.QueryRow(ctx, fmt.Sprintf(`EXPLAIN (VERBOSE, FORMAT JSON)
		SELECT %[1]s.event_seq(x), %[1]s.event_time(x) FROM unnest($1::text[]) AS x`, schema), ids).Scan(&plan))
	require.NotContains(t, plan, "event_seq(", "inlined: no call left in the plan")
	require.NotContains(t, plan, "event_time(", "inlined: no call left in the plan")

	_, err := m.Down(ctx, &migrations.DownOpts{Steps: outboxdLatest(t) - 14})
	require.NoError(t, err)
	require.Equal(t, read(), after, "the same answers as the functions before migration 15")
}

// upToLatest migrates a fresh schema all the way up and returns it with its
// pool and migrator.
func upToLatest(ctx context.Context, t *testing.T) (*pgxpool.Pool, string, *migrations.Migrator) {
	t.Helper()
	pool := outboxtest.Pool(t)
	schema := freshSchema(t)
	m, err := migrations.New(pool, &migrations.Config{Schema: schema})
	require.NoError(t, err)
	_, err = m.Up(ctx)
	require.NoError(t, err)
	return pool, schema, m
}

// indexExists tells whether schema has an index named index.
func indexExists(t *testing.T, pool *pgxpool.Pool, schema, index string) bool {
	t.Helper()
	var exists bool
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT to_regclass($1) IS NOT NULL`, schema+"."+index).Scan(&exists))
	return exists
}
