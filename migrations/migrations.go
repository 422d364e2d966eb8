// Package migrations owns outboxd's database schema: River's tables, migrated with
// rivermigrate, and outboxd's own tables, functions and views, migrated with
// golang-migrate from the SQL files embedded here. Both go into one Postgres schema
// (default "outbox") and both run under one advisory lock, so two processes
// migrating at once are safe; running Up twice is a no-op.
//
// The SQL files name objects "outbox.…"; they are rewritten for the configured
// schema as they are read (outbox.RewriteSchema). River's migrations run first
// because outbox.deliveries reads River's job table.
package migrations

import (
	"bytes"
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"log/slog"
	"time"

	"github.com/golang-migrate/migrate/v4"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/outboxd/outboxd/outbox"
)

//go:embed *.sql
var files embed.FS

// MigrationsTable is golang-migrate's bookkeeping table for outboxd's own migrations,
// inside the outboxd schema (River keeps its own in river_migration).
const MigrationsTable = "outboxd_migrations"

// Config configures a Migrator. A nil *Config uses the defaults.
type Config struct {
	// Schema receives River's tables and outboxd's. Defaults to "outbox".
	Schema string

	// Logger receives progress. Defaults to discarding it.
	Logger *slog.Logger
}

// Migrator applies and inspects outboxd's migrations.
type Migrator struct {
	pool   *pgxpool.Pool
	schema string
	logger *slog.Logger
	river  *rivermigrate.Migrator[pgx.Tx]
}

// New returns a Migrator for the schema in config.
func New(pool *pgxpool.Pool, config *Config) (*Migrator, error) {
	if config == nil {
		config = &Config{}
	}
	schema := cmp.Or(config.Schema, outbox.DefaultSchema)
	if err := outbox.ValidateSchemaName(schema); err != nil {
		return nil, err
	}
	logger := config.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// River's migrator logs each version at info; Up's Result reports them instead.
	river, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: schema, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("river migrator: %w", err)
	}
	return &Migrator{pool: pool, schema: schema, logger: logger, river: river}, nil
}

// Versions are the applied and latest versions of both migration lines.
type Versions struct {
	RiverCurrent   int  `json:"river_current"`
	RiverLatest    int  `json:"river_latest"`
	OutboxdCurrent int  `json:"outboxd_current"`
	OutboxdLatest  int  `json:"outboxd_latest"`
	OutboxdDirty   bool `json:"outboxd_dirty"`
}

// UpToDate reports whether both lines are at their latest version.
func (v *Versions) UpToDate() bool {
	return v.RiverCurrent == v.RiverLatest && v.OutboxdCurrent == v.OutboxdLatest && !v.OutboxdDirty
}

// Result says what a migration run changed.
type Result struct {
	River   []int `json:"river"`   // River versions applied (up) or removed (down)
	Outboxd []int `json:"outboxd"` // outboxd versions applied or removed
	Versions
}

// Up creates the schema if needed and applies every pending migration, River's first.
func (m *Migrator) Up(ctx context.Context) (*Result, error) {
	result := &Result{}
	err := m.locked(ctx, func() error {
		if _, err := m.pool.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+m.schema); err != nil {
			return fmt.Errorf("create schema %s: %w", m.schema, err)
		}
		riverRes, err := m.river.Migrate(ctx, rivermigrate.DirectionUp, nil)
		if err != nil {
			return fmt.Errorf("river migrations: %w", err)
		}
		for _, v := range riverRes.Versions {
			result.River = append(result.River, v.Version)
		}
		result.Outboxd, err = m.own(ctx, func(mg *migrate.Migrate) error { return mg.Up() })
		return err
	})
	if err != nil {
		return nil, err
	}
	return m.withVersions(ctx, result)
}

// DownOpts says how far Down goes. A nil *DownOpts rolls back one outboxd migration.
type DownOpts struct {
	// Steps is how many of outboxd's own migrations to roll back. Defaults to 1.
	Steps int

	// All rolls back every outboxd migration and then River's, removing every table
	// outboxd created (and all their data). The schema itself is left.
	All bool
}

// Down rolls migrations back.
func (m *Migrator) Down(ctx context.Context, opts *DownOpts) (*Result, error) {
	if opts == nil {
		opts = &DownOpts{}
	}
	result := &Result{}
	err := m.locked(ctx, func() error {
		var err error
		if opts.All {
			result.Outboxd, err = m.own(ctx, func(mg *migrate.Migrate) error { return mg.Down() })
			if err != nil {
				return err
			}
			riverRes, err := m.river.Migrate(ctx, rivermigrate.DirectionDown, &rivermigrate.MigrateOpts{TargetVersion: -1})
			if err != nil {
				return fmt.Errorf("river migrations: %w", err)
			}
			for _, v := range riverRes.Versions {
				result.River = append(result.River, v.Version)
			}
			return nil
		}
		steps := max(opts.Steps, 1)
		result.Outboxd, err = m.own(ctx, func(mg *migrate.Migrate) error { return mg.Steps(-steps) })
		return err
	})
	if err != nil {
		return nil, err
	}
	return m.withVersions(ctx, result)
}

// Status returns both lines' versions. It changes nothing.
func (m *Migrator) Status(ctx context.Context) (*Versions, error) {
	res, err := m.withVersions(ctx, &Result{})
	if err != nil {
		return nil, err
	}
	return &res.Versions, nil
}

func (m *Migrator) withVersions(ctx context.Context, result *Result) (*Result, error) {
	all := m.river.AllVersions()
	result.RiverLatest = all[len(all)-1].Version

	var exists bool
	if err := m.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", m.schema+".river_migration").Scan(&exists); err != nil {
		return nil, fmt.Errorf("read river version: %w", err)
	}
	if exists {
		existing, err := m.river.ExistingVersions(ctx)
		if err != nil {
			return nil, fmt.Errorf("read river version: %w", err)
		}
		if len(existing) > 0 {
			result.RiverCurrent = existing[len(existing)-1].Version
		}
	}

	latest, err := latestOwnVersion()
	if err != nil {
		return nil, err
	}
	result.OutboxdLatest = latest
	if err := m.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", m.schema+"."+MigrationsTable).Scan(&exists); err != nil {
		return nil, fmt.Errorf("read outboxd version: %w", err)
	}
	if exists {
		var version int64
		err := m.pool.QueryRow(ctx, "SELECT version, dirty FROM "+m.schema+"."+MigrationsTable+" LIMIT 1").Scan(&version, &result.OutboxdDirty)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("read outboxd version: %w", err)
		}
		result.OutboxdCurrent = int(version)
	}
	return result, nil
}

// locked runs fn holding a session advisory lock for this schema's migrations.
//
// The lock is held on a connection of its own, outside the pool: fn needs pool
// connections, and a lock held on one would leave a pool of one connection (or N
// migrators sharing a pool of N) waiting forever for another.
func (m *Migrator) locked(ctx context.Context, fn func() error) error {
	conn, err := m.connect(ctx)
	if err != nil {
		return fmt.Errorf("connect for migration lock: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx)) //nolint:errcheck // closing also releases the lock

	key := lockKey(m.schema)
	start := time.Now()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", key); err != nil {
		return fmt.Errorf("take migration lock: %w", err)
	}
	if waited := time.Since(start); waited > time.Second {
		m.logger.InfoContext(ctx, "waited for another migration to finish", slog.Duration("waited", waited))
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", key); err != nil {
			m.logger.WarnContext(ctx, "release migration lock", slog.String("error", err.Error()))
		}
	}()
	return fn()
}

// connect opens a connection configured as the pool's are, hooks included.
func (m *Migrator) connect(ctx context.Context) (*pgx.Conn, error) {
	config := m.pool.Config()
	connConfig := config.ConnConfig.Copy()
	if config.BeforeConnect != nil {
		if err := config.BeforeConnect(ctx, connConfig); err != nil {
			return nil, err
		}
	}
	conn, err := pgx.ConnectConfig(ctx, connConfig)
	if err != nil {
		return nil, err
	}
	if config.AfterConnect != nil {
		if err := config.AfterConnect(ctx, conn); err != nil {
			_ = conn.Close(context.WithoutCancel(ctx))
			return nil, err
		}
	}
	return conn, nil
}

func lockKey(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("outboxd migrate " + schema))
	return int64(h.Sum64()) //nolint:gosec // any 64 bits make a lock key
}

// own runs a golang-migrate operation on outboxd's migrations and returns the
// versions it applied or removed.
func (m *Migrator) own(ctx context.Context, op func(*migrate.Migrate) error) ([]int, error) {
	source, err := iofs.New(schemaFS{fs: files, schema: m.schema}, ".")
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	db := stdlib.OpenDBFromPool(m.pool)
	defer db.Close()
	driver, err := migratepgx.WithInstance(db, &migratepgx.Config{
		SchemaName:      m.schema,
		MigrationsTable: MigrationsTable,
	})
	if err != nil {
		return nil, fmt.Errorf("open migrations table: %w", err)
	}
	mg, err := migrate.NewWithInstance("iofs", source, "pgx5", driver)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	defer mg.Close()

	before, _, err := mg.Version()
	if err != nil && !errors.Is(err, migrate.ErrNilVersion) {
		return nil, fmt.Errorf("read outboxd version: %w", err)
	}
	if err := op(mg); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return nil, fmt.Errorf("outboxd migrations: %w", err)
	}
	after, _, err := mg.Version()
	if err != nil && !errors.Is(err, migrate.ErrNilVersion) {
		return nil, fmt.Errorf("read outboxd version: %w", err)
	}
	// The versions between the two, of those that exist: numbers may have gaps
	// (golang-migrate steps from one file to the next).
	versions, err := ownVersions()
	if err != nil {
		return nil, err
	}
	var changed []int
	for _, v := range versions {
		if v > int(min(before, after)) && v <= int(max(before, after)) { //nolint:gosec // small versions
			changed = append(changed, v)
		}
	}
	if after < before {
		// Report a rollback from the top down.
		for i, j := 0, len(changed)-1; i < j; i, j = i+1, j-1 {
			changed[i], changed[j] = changed[j], changed[i]
		}
	}
	m.logger.DebugContext(ctx, "outboxd migrations", slog.Any("changed", changed), slog.Uint64("version", uint64(after)))
	return changed, nil
}

func latestOwnVersion() (int, error) {
	versions, err := ownVersions()
	if err != nil {
		return 0, err
	}
	return versions[len(versions)-1], nil
}

// ownVersions lists outboxd's embedded migration versions, in order.
func ownVersions() ([]int, error) {
	source, err := iofs.New(files, ".")
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	defer source.Close()
	v, err := source.First()
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	versions := []int{int(v)}
	for {
		next, err := source.Next(v)
		if errors.Is(err, fs.ErrNotExist) {
			return versions, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read embedded migrations: %w", err)
		}
		versions = append(versions, int(next))
		v = next
	}
}

// schemaFS serves the embedded SQL files rewritten for a schema.
type schemaFS struct {
	fs     embed.FS
	schema string
}

func (s schemaFS) Open(name string) (fs.File, error) {
	f, err := s.fs.Open(name)
	if err != nil {
		return nil, err
	}
	info, err := f.Stat()
	if err != nil || info.IsDir() {
		return f, err
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	rewritten := []byte(outbox.RewriteSchema(string(data), s.schema))
	return &memFile{Reader: bytes.NewReader(rewritten), info: sizedInfo{FileInfo: info, size: int64(len(rewritten))}}, nil
}

func (s schemaFS) ReadDir(name string) ([]fs.DirEntry, error) { return s.fs.ReadDir(name) }

type memFile struct {
	*bytes.Reader
	info fs.FileInfo
}

func (f *memFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *memFile) Close() error               { return nil }

type sizedInfo struct {
	fs.FileInfo
	size int64
}

func (i sizedInfo) Size() int64 { return i.size }
