package migrations_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/migrations"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/outboxtest"
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

// ownVersions are outboxd's migration versions in this directory, in order.
// Numbers may have gaps: golang-migrate steps from one file to the next.
func ownVersions(t *testing.T) []int {
	t.Helper()
	ups, err := filepath.Glob("*.up.sql")
	require.NoError(t, err)
	require.NotEmpty(t, ups)
	versions := make([]int, len(ups))
	for i, name := range ups {
		versions[i], err = strconv.Atoi(name[:strings.IndexByte(name, '_')])
		require.NoError(t, err, name)
	}
	slices.Sort(versions)
	return versions
}

// outboxdLatest is the newest outboxd migration in this directory.
func outboxdLatest(t *testing.T) int {
	t.Helper()
	versions := ownVersions(t)
	return versions[len(versions)-1]
}

// ownUpTo lists outboxd's versions up to n: the ones a fresh Up applies.
func ownUpTo(t *testing.T, n int) []int {
	t.Helper()
	var versions []int
	for _, v := range ownVersions(t) {
		if v <= n {
			versions = append(versions, v)
		}
	}
	return versions
}

// ownDownFrom lists outboxd's versions n and below, from the top: the order
// Down removes them in.
func ownDownFrom(t *testing.T, n int) []int {
	t.Helper()
	versions := ownUpTo(t, n)
	slices.Reverse(versions)
	return versions
}

// upTo returns 1..n, River's versions up to n.
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
		require.Equal(t, ownUpTo(t, res.OutboxdLatest), res.Outboxd)
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
		require.Equal(t, len(ownVersions(t)), applied)
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
		require.Equal(t, ownDownFrom(t, b.up.OutboxdLatest)[1], res.OutboxdCurrent)
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
		res, err := b.migrator.Down(b.ctx, &migrations.DownOpts{Steps: len(ownVersions(t))})
		require.NoError(t, err)
		require.Equal(t, ownDownFrom(t, b.up.OutboxdLatest), res.Outboxd)
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
		require.Equal(t, ownUpTo(t, b.up.OutboxdLatest), res.Outboxd)
		require.Empty(t, res.River)
		require.True(t, res.UpToDate())
		require.True(t, exists(b.ctx, t, b.schema+".events"))
	})

	t.Run("ExplicitSteps", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		res, err := b.migrator.Down(b.ctx, &migrations.DownOpts{Steps: len(ownVersions(t))})
		require.NoError(t, err)
		require.Equal(t, ownDownFrom(t, b.up.OutboxdLatest), res.Outboxd)
		require.Zero(t, res.OutboxdCurrent)

		// Nothing left to roll back: an error, and nothing changes.
		_, err = b.migrator.Down(b.ctx, &migrations.DownOpts{Steps: 1})
		require.Error(t, err)
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
		require.Equal(t, ownDownFrom(t, b.up.OutboxdLatest), res.Outboxd)
		require.ElementsMatch(t, upTo(b.up.RiverLatest), res.River, "every River version is removed")
		require.Zero(t, res.RiverCurrent)
		require.Zero(t, res.OutboxdCurrent)

		require.False(t, exists(b.ctx, t, b.schema+".events"))
		require.False(t, exists(b.ctx, t, b.schema+".river_job"))
		require.False(t, exists(b.ctx, t, b.schema+".river_migration"))
		require.True(t, schemaExists(b.ctx, t, b.schema), "the schema itself stays")

		status, err := b.migrator.Status(b.ctx)
		require.NoError(t, err)
		require.Zero(t, status.RiverCurrent)
		require.Zero(t, status.OutboxdCurrent)

		// And everything comes back.
		res, err = b.migrator.Up(b.ctx)
		require.NoError(t, err)
		require.Equal(t, upTo(b.up.RiverLatest), res.River)
		require.Equal(t, ownUpTo(t, b.up.OutboxdLatest), res.Outboxd)
		require.True(t, res.UpToDate())
	})

	t.Run("DataGoesWithIt", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		store, err := outbox.NewStore(b.pool, &outbox.StoreConfig{Schema: b.schema})
		require.NoError(t, err)
		event, err := store.Publish(b.ctx, &outbox.PublishParams{Type: "agent.step.completed"})
		require.NoError(t, err)

		_, err = b.migrator.Down(b.ctx, &migrations.DownOpts{Steps: len(ownVersions(t))})
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
	require.NoError(t, outboxtest.Pool(t).QueryRow(ctx, "SELECT count(*) FROM "+b+".events WHERE event_id = $1", eventID).Scan(&n))
	require.Equal(t, 1, n)
}
