package migrations

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/golang-migrate/migrate/v4"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/stretchr/testify/require"
)

// This file tests from inside the package, which outboxtest imports; it finds
// Postgres the way outboxtest does.
var internalPool = struct {
	once sync.Once
	pool *pgxpool.Pool
	err  error
}{}

func testPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	internalPool.once.Do(func() {
		url := cmp.Or(os.Getenv("TEST_DATABASE_URL"), os.Getenv("DATABASE_URL"), "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
		config, err := pgxpool.ParseConfig(url)
		if err != nil {
			internalPool.err = err
			return
		}
		config.MaxConns = 10
		internalPool.pool, internalPool.err = pgxpool.NewWithConfig(context.Background(), config)
		if internalPool.err == nil {
			internalPool.err = internalPool.pool.Ping(context.Background())
		}
	})
	if internalPool.err != nil {
		t.Fatalf("outboxd tests need Postgres: %v\nSet TEST_DATABASE_URL, or run `make test`, which finds or starts one.", internalPool.err)
	}
	return internalPool.pool
}

// catalogQueries describe everything a migration can change in a schema, with
// the schema's name replaced by "outbox" so two schemas compare.
var catalogQueries = []string{
	`SELECT c.relname, c.relkind, coalesce(c.relacl::text, '') FROM pg_class AS c
		WHERE c.relnamespace = $1::regnamespace ORDER BY 1`,
	`SELECT table_name, column_name, data_type, coalesce(column_default, ''), is_nullable, is_identity,
		coalesce(identity_generation, ''), coalesce(pg_get_serial_sequence(table_schema || '.' || table_name, column_name), '')
		FROM information_schema.columns WHERE table_schema = $1 ORDER BY 1, 2`,
	`SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
		WHERE connamespace = $1::regnamespace ORDER BY 1, 2`,
	`SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index
		WHERE indrelid IN (SELECT oid FROM pg_class WHERE relnamespace = $1::regnamespace) ORDER BY 1`,
	`SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger
		WHERE NOT tgisinternal AND tgrelid IN (SELECT oid FROM pg_class WHERE relnamespace = $1::regnamespace) ORDER BY 1, 2`,
	`SELECT proname, pg_get_function_identity_arguments(oid), pg_get_functiondef(oid), coalesce(proacl::text, '') FROM pg_proc
		WHERE pronamespace = $1::regnamespace ORDER BY 1, 2`,
	`SELECT viewname, definition FROM pg_views WHERE schemaname = $1 ORDER BY 1`,
	`SELECT sequencename, data_type::text, start_value, increment_by, cycle FROM pg_sequences WHERE schemaname = $1 ORDER BY 1`,
}

func catalog(ctx context.Context, t *testing.T, schema string) string {
	t.Helper()
	var b strings.Builder
	for _, query := range catalogQueries {
		rows, err := testPool(t).Query(ctx, query, schema)
		require.NoError(t, err)
		for rows.Next() {
			values, err := rows.Values()
			require.NoError(t, err)
			line := fmt.Sprintln(values...)
			if !strings.Contains(line, MigrationsTable) { // golang-migrate's bookkeeping
				b.WriteString(line)
			}
		}
		require.NoError(t, rows.Err())
	}
	out := strings.ReplaceAll(b.String(), schema+".", "outbox.")
	// From migration 10 on, each installation draws its own event id tag, which
	// outbox.event_id() and outbox.event_seq() carry in their bodies.
	var tag string
	err := testPool(t).QueryRow(ctx, "SELECT event_id_tag FROM "+schema+".settings").Scan(&tag)
	if err == nil {
		out = strings.ReplaceAll(out, tag, "<event id tag>")
	}
	return out
}

// migratedTo returns a fresh schema with River's migrations and outboxd's up to
// version, applied up only.
func migratedTo(ctx context.Context, t *testing.T, version int) (*Migrator, string) {
	t.Helper()
	b := make([]byte, 6)
	_, err := rand.Read(b)
	require.NoError(t, err)
	schema := "t_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		_, err := testPool(t).Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
		require.NoError(t, err)
	})
	m, err := New(testPool(t), &Config{Schema: schema})
	require.NoError(t, err)
	_, err = m.pool.Exec(ctx, "CREATE SCHEMA "+schema)
	require.NoError(t, err)
	_, err = m.river.Migrate(ctx, rivermigrate.DirectionUp, nil)
	require.NoError(t, err)
	if version > 0 {
		_, err = m.own(ctx, func(mg *migrate.Migrate) error { return mg.Migrate(uint(version)) }) //nolint:gosec // small
		require.NoError(t, err)
	}
	return m, schema
}

// Each down migration leaves the schema exactly as the migrations before it made
// it: tables, columns, defaults, identities, constraints, indexes, triggers,
// functions, views, sequences and privileges.
func TestDownUndoesUp(t *testing.T) {
	t.Parallel()

	latest, err := latestOwnVersion()
	require.NoError(t, err)
	for version := 1; version <= latest; version++ {
		t.Run(fmt.Sprintf("Version%d", version), func(t *testing.T) {
			t.Parallel()

			ctx := context.Background()
			_, before := migratedTo(ctx, t, version-1)
			m, undone := migratedTo(ctx, t, version)
			_, err := m.own(ctx, func(mg *migrate.Migrate) error { return mg.Steps(-1) })
			require.NoError(t, err)
			require.Equal(t, catalog(ctx, t, before), catalog(ctx, t, undone))
		})
	}
}

// Should sealed header values reach migration 7's down SQL (Migrator.Down
// decrypts them first), it refuses rather than lose them.
func TestDown7RefusesSealedHeaders(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	m, schema := migratedTo(ctx, t, 7)
	_, err := testPool(t).Exec(ctx, "INSERT INTO "+schema+`.subscriptions (url, header_names, headers_key_id, headers_ciphertext)
		VALUES ('https://example.com/', '{Authorization}', 'k', '\x00')`)
	require.NoError(t, err)
	_, err = m.own(ctx, func(mg *migrate.Migrate) error { return mg.Steps(-1) })
	require.ErrorContains(t, err, "1 subscriptions have encrypted header values, which SQL cannot decrypt")
	var names []string
	require.NoError(t, testPool(t).QueryRow(ctx, "SELECT header_names FROM "+schema+".subscriptions").Scan(&names))
	require.Equal(t, []string{"Authorization"}, names, "the down migration changed nothing")
}
