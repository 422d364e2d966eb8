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
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-migrate/migrate/v4"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/secretbox"
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

	// Keyring, if set, lets Up encrypt the custom header values that
	// subscriptions kept in plaintext before migration 7 (SQL cannot: the key is
	// not in the database), and lets Down below migration 7 decrypt them first,
	// since version 6 keeps them in plaintext. Without it Up leaves them for a
	// daemon to encrypt when it starts and reports them in
	// Result.HeadersPlaintext; Down refuses to roll back past migration 7 while
	// any are encrypted.
	Keyring *secretbox.Keyring
}

// Migrator applies and inspects outboxd's migrations.
type Migrator struct {
	pool    *pgxpool.Pool
	schema  string
	logger  *slog.Logger
	keyring *secretbox.Keyring
	river   *rivermigrate.Migrator[pgx.Tx]
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
	return &Migrator{pool: pool, schema: schema, logger: logger, keyring: config.Keyring, river: river}, nil
}

// Versions are the applied and latest versions of both migration lines.
type Versions struct {
	RiverCurrent   int  `json:"river_current"`
	RiverLatest    int  `json:"river_latest"`
	OutboxdCurrent int  `json:"outboxd_current"`
	OutboxdLatest  int  `json:"outboxd_latest"`
	OutboxdDirty   bool `json:"outboxd_dirty"`
}

// Behind reports whether the schema lacks a migration this build has (or one
// failed part way): the daemon cannot run on it. A schema ahead of this build,
// migrated by a newer outboxd during a rolling upgrade, is not behind.
func (v *Versions) Behind() bool {
	return v.RiverCurrent < v.RiverLatest || v.OutboxdCurrent < v.OutboxdLatest || v.OutboxdDirty
}

// UpToDate reports whether both lines are at their latest version.
func (v *Versions) UpToDate() bool {
	return v.RiverCurrent == v.RiverLatest && v.OutboxdCurrent == v.OutboxdLatest && !v.OutboxdDirty
}

// Result says what a migration run changed.
type Result struct {
	River   []int `json:"river"`   // River versions applied (up) or removed (down)
	Outboxd []int `json:"outboxd"` // outboxd versions applied or removed

	// HeadersSealed counts subscriptions whose custom header values Up
	// encrypted, written in plaintext before migration 7.
	HeadersSealed int64 `json:"headers_sealed,omitempty"`
	// HeadersPlaintext counts those Up left in plaintext, having no keyring.
	HeadersPlaintext int64 `json:"headers_plaintext,omitempty"`
	// HeadersUnsealed counts those Down decrypted into plaintext to roll back
	// past migration 7.
	HeadersUnsealed int64 `json:"headers_unsealed,omitempty"`

	// SchemaDropped is set when Down with All dropped the schema itself;
	// SchemaKept says why it did not (it holds other objects, or is public).
	SchemaDropped bool   `json:"schema_dropped"`
	SchemaKept    string `json:"schema_kept,omitempty"`
	Versions
}

// headersSealedVersion is the migration from which custom header values are
// encrypted.
const headersSealedVersion = 7

// Migration is one migration of one line.
type Migration struct {
	Line    string `json:"line"` // LineOutboxd or LineRiver
	Version int    `json:"version"`
	Name    string `json:"name"`
}

// The two migration lines.
const (
	LineOutboxd = "outboxd"
	LineRiver   = "river"
)

func (m Migration) String() string { return fmt.Sprintf("%s %d (%s)", m.Line, m.Version, m.Name) }

// StepsError is Down asked to roll back more of outboxd's migrations than are
// applied. Nothing was rolled back.
type StepsError struct {
	Schema    string
	Requested int // the Steps asked for
	Applied   int // outboxd migrations applied
}

func (e *StepsError) Error() string {
	if e.Applied == 0 {
		return fmt.Sprintf("nothing to undo: no outboxd migration is applied in schema %s", e.Schema)
	}
	return fmt.Sprintf("only %d outboxd migrations are applied in schema %s, so %d cannot be rolled back; nothing was changed",
		e.Applied, e.Schema, e.Requested)
}

// Up creates the schema if needed and applies every pending migration, River's first.
// A schema already migrated beyond this build (by a newer outboxd, during a rolling
// upgrade) is left as it is.
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
		current, err := m.withVersions(ctx, &Result{})
		if err != nil {
			return err
		}
		if current.OutboxdCurrent > current.OutboxdLatest {
			m.logger.WarnContext(ctx, "the schema is newer than this outboxd: leaving it as it is",
				slog.Int("outboxd_current", current.OutboxdCurrent), slog.Int("outboxd_latest", current.OutboxdLatest))
			return nil
		}
		result.Outboxd, err = m.own(ctx, func(mg *migrate.Migrate) error { return mg.Up() })
		if err != nil {
			return err
		}
		return m.sealHeaders(ctx, result)
	})
	if err != nil {
		return nil, err
	}
	return m.withVersions(ctx, result)
}

// sealHeaders encrypts the custom header values left in plaintext from before
// migration 7, or counts them when there is no keyring.
func (m *Migrator) sealHeaders(ctx context.Context, result *Result) error {
	store, err := outbox.NewStore(m.pool, &outbox.StoreConfig{Schema: m.schema, Keyring: m.keyring})
	if err != nil {
		return err
	}
	if m.keyring != nil {
		result.HeadersSealed, err = store.HeadersSealPlaintext(ctx)
		if err != nil {
			return fmt.Errorf("encrypt custom header values: %w", err)
		}
		return nil
	}
	counts, err := store.HeadersCount(ctx)
	if err != nil {
		return err
	}
	result.HeadersPlaintext = counts.Plaintext
	return nil
}

// unsealHeaders decrypts custom header values before a rollback past
// migration 7, which would otherwise lose them; without a keyring it refuses
// before anything changes.
func (m *Migrator) unsealHeaders(ctx context.Context, opts *DownOpts, result *Result) error {
	versions, err := m.withVersions(ctx, &Result{})
	if err != nil {
		return err
	}
	target := versions.OutboxdCurrent - max(opts.Steps, 1)
	if opts.All {
		target = 0
	}
	if versions.OutboxdCurrent < headersSealedVersion || target >= headersSealedVersion {
		return nil
	}
	store, err := outbox.NewStore(m.pool, &outbox.StoreConfig{Schema: m.schema, Keyring: m.keyring})
	if err != nil {
		return err
	}
	if m.keyring == nil {
		counts, err := store.HeadersCount(ctx)
		if err != nil {
			return err
		}
		if counts.Sealed > 0 {
			return fmt.Errorf("%d subscriptions have encrypted custom header values, which outboxd before migration %d keeps in plaintext: "+
				"set OUTBOXD_ENCRYPTION_KEY (and OUTBOXD_ENCRYPTION_KEYS_OLD for older keys) so that rolling back can decrypt them; nothing was rolled back",
				counts.Sealed, headersSealedVersion)
		}
		return nil
	}
	result.HeadersUnsealed, err = store.HeadersUnsealForDowngrade(ctx)
	if err != nil {
		return fmt.Errorf("decrypt custom header values: %w; nothing was rolled back", err)
	}
	return nil
}

// DownOpts says how far Down goes. A nil *DownOpts rolls back one outboxd migration.
type DownOpts struct {
	// Steps is how many of outboxd's own migrations to roll back. Defaults to 1.
	// More than are applied is a *StepsError, and nothing is rolled back.
	Steps int

	// All rolls back every outboxd migration and then River's, removing every table
	// outboxd created (and all their data), and then drops the schema itself if
	// nothing else is left in it (never public).
	All bool
}

// DownPlan is what Down would do.
type DownPlan struct {
	Schema string `json:"schema"`

	// Migrations are rolled back in this order: outboxd's newest first, then
	// (with All) River's.
	Migrations []Migration `json:"migrations"`

	// DropSchema is set with All on an existing schema other than public: Down
	// drops it if nothing else is left in it.
	DropSchema bool `json:"drop_schema"`

	Versions
}

// PlanDown returns what Down(ctx, opts) would roll back, changing nothing. It
// fails with a *StepsError as Down would.
func (m *Migrator) PlanDown(ctx context.Context, opts *DownOpts) (*DownPlan, error) {
	if opts == nil {
		opts = &DownOpts{}
	}
	current, err := m.withVersions(ctx, &Result{})
	if err != nil {
		return nil, err
	}
	plan := &DownPlan{Schema: m.schema, Versions: current.Versions}
	own, err := ownMigrations()
	if err != nil {
		return nil, err
	}
	applied := 0
	for _, mg := range own {
		if mg.Version <= current.OutboxdCurrent {
			applied++
		}
	}
	steps := applied
	if !opts.All {
		steps = max(opts.Steps, 1)
		if steps > applied {
			return nil, &StepsError{Schema: m.schema, Requested: steps, Applied: applied}
		}
	}
	for i := applied - 1; i >= applied-steps; i-- {
		plan.Migrations = append(plan.Migrations, own[i])
	}
	if opts.All {
		river := m.river.AllVersions()
		for i := len(river) - 1; i >= 0; i-- {
			if river[i].Version <= current.RiverCurrent {
				plan.Migrations = append(plan.Migrations, Migration{Line: LineRiver, Version: river[i].Version, Name: river[i].Name})
			}
		}
		if m.schema != "public" {
			if err := m.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", m.schema).Scan(&plan.DropSchema); err != nil {
				return nil, fmt.Errorf("find schema %s: %w", m.schema, err)
			}
		}
	}
	return plan, nil
}

// Down rolls migrations back. Asked for more steps than are applied, it fails
// with a *StepsError before it changes anything.
func (m *Migrator) Down(ctx context.Context, opts *DownOpts) (*Result, error) {
	if opts == nil {
		opts = &DownOpts{}
	}
	result := &Result{}
	err := m.locked(ctx, func() error {
		plan, err := m.PlanDown(ctx, opts)
		if err != nil {
			return err
		}
		if err := m.unsealHeaders(ctx, opts, result); err != nil {
			return err
		}
		if !opts.All {
			result.Outboxd, err = m.own(ctx, func(mg *migrate.Migrate) error { return mg.Steps(-len(plan.Migrations)) })
			return err
		}
		if plan.OutboxdCurrent > 0 {
			if result.Outboxd, err = m.own(ctx, func(mg *migrate.Migrate) error { return mg.Down() }); err != nil {
				return err
			}
		}
		if plan.RiverCurrent > 0 {
			riverRes, err := m.river.Migrate(ctx, rivermigrate.DirectionDown, &rivermigrate.MigrateOpts{TargetVersion: -1})
			if err != nil {
				return fmt.Errorf("river migrations: %w", err)
			}
			for _, v := range riverRes.Versions {
				result.River = append(result.River, v.Version)
			}
		}
		// golang-migrate's bookkeeping table outlives the last down migration.
		if _, err := m.pool.Exec(ctx, "DROP TABLE IF EXISTS "+m.schema+"."+MigrationsTable); err != nil {
			return fmt.Errorf("drop %s: %w", MigrationsTable, err)
		}
		switch {
		case m.schema == "public":
			result.SchemaKept = "outboxd never drops the public schema"
		case plan.DropSchema:
			// RESTRICT: only if nothing else is in it.
			_, err := m.pool.Exec(ctx, "DROP SCHEMA "+m.schema+" RESTRICT")
			var pgErr *pgconn.PgError
			switch {
			case errors.As(err, &pgErr) && pgErr.Code == "2BP01": // dependent_objects_still_exist
				result.SchemaKept = "it holds objects that are not outboxd's"
			case err != nil:
				return fmt.Errorf("drop schema %s: %w", m.schema, err)
			default:
				result.SchemaDropped = true
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m.withVersions(ctx, result)
}

// DaemonApplicationName is the Postgres application_name a daemon's connections
// carry, so that Activity can find daemons working on schema. instance tells
// daemons apart (pid@host, say). Postgres keeps the first 63 bytes.
func DaemonApplicationName(schema, instance string) string {
	name := daemonApplicationPrefix(schema) + instance
	if len(name) > 63 {
		name = name[:63]
	}
	return name
}

func daemonApplicationPrefix(schema string) string { return "outboxd run " + schema + " " }

// Activity is what shows that daemons work on a schema.
type Activity struct {
	// Daemons are the daemons connected to the database for this schema, told
	// apart by their application_name (DaemonApplicationName); Connections are
	// their connections.
	Daemons     int `json:"daemons"`
	Connections int `json:"connections"`

	// RiverLeader is the River client holding the schema's leader lease, held by
	// a running daemon and renewed every few seconds; empty when none holds it.
	// RiverLeaderUntil is when the lease runs out unless renewed.
	RiverLeader      string     `json:"river_leader,omitempty"`
	RiverLeaderUntil *time.Time `json:"river_leader_until,omitempty"`
}

// Running reports whether anything shows a daemon at work.
func (a *Activity) Running() bool { return a.Daemons > 0 || a.RiverLeader != "" }

// Activity looks for daemons working on the schema: connections that carry a
// daemon's application_name (Postgres shows them to roles allowed to see them),
// and River's leader lease, which a running daemon renews. It changes nothing.
func (m *Migrator) Activity(ctx context.Context) (*Activity, error) {
	activity := &Activity{}
	err := m.pool.QueryRow(ctx, `SELECT count(DISTINCT application_name), count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND starts_with(application_name, $1) AND pid <> pg_backend_pid()`,
		daemonApplicationPrefix(m.schema)).Scan(&activity.Daemons, &activity.Connections)
	if err != nil {
		return nil, fmt.Errorf("look for daemons: %w", err)
	}
	var exists bool
	if err := m.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", m.schema+".river_leader").Scan(&exists); err != nil {
		return nil, fmt.Errorf("look for River's leader: %w", err)
	}
	if !exists {
		return activity, nil
	}
	var until time.Time
	err = m.pool.QueryRow(ctx, "SELECT leader_id, expires_at FROM "+m.schema+".river_leader WHERE expires_at > now() LIMIT 1").Scan(&activity.RiverLeader, &until)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return nil, fmt.Errorf("look for River's leader: %w", err)
	default:
		activity.RiverLeaderUntil = &until
	}
	return activity, nil
}

// Check reports whether the schema has every migration this build needs, without
// changing anything: a daemon is not ready while it returns an error (someone
// rolled the schema back under it). A schema ahead of this build is fine.
func (m *Migrator) Check(ctx context.Context) error {
	v, err := m.Status(ctx)
	if err != nil {
		return err
	}
	switch {
	case v.OutboxdDirty:
		return fmt.Errorf("schema %s: outboxd migration %d failed part way (dirty); see `outboxd migrate status`", m.schema, v.OutboxdCurrent)
	case v.Behind():
		return fmt.Errorf("schema %s is at outboxd %d and River %d, but this outboxd needs outboxd %d and River %d: it was rolled back; run `outboxd migrate up`",
			m.schema, v.OutboxdCurrent, v.RiverCurrent, v.OutboxdLatest, v.RiverLatest)
	}
	return nil
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
	// The versions between the two, as the files number them (a version may be
	// missing: numbers are assigned ahead of merging).
	var changed []int
	for v, err := source.First(); err == nil && v <= max(before, after); v, err = source.Next(v) {
		if v > min(before, after) {
			changed = append(changed, int(v)) //nolint:gosec // small versions
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

// ownMigrations lists outboxd's migrations, oldest first.
func ownMigrations() ([]Migration, error) {
	names, err := fs.Glob(files, "*.up.sql")
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	migrations := make([]Migration, 0, len(names))
	for _, name := range names {
		number, rest, ok := strings.Cut(strings.TrimSuffix(name, ".up.sql"), "_")
		version, err := strconv.Atoi(number)
		if !ok || err != nil {
			return nil, fmt.Errorf("embedded migration %s: not NNNNNN_name.up.sql", name)
		}
		migrations = append(migrations, Migration{Line: LineOutboxd, Version: version, Name: rest})
	}
	slices.SortFunc(migrations, func(a, b Migration) int { return a.Version - b.Version })
	return migrations, nil
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
