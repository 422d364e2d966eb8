package outbox

import (
	"cmp"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/outbox/internal/dbsqlc"
	"github.com/outboxd/outboxd/outbox/netguard"
	"github.com/outboxd/outboxd/outbox/secretbox"
)

// DB is what a Store runs on: usually a *pgxpool.Pool.
type DB interface {
	Executor
	Begin(ctx context.Context) (pgx.Tx, error)
}

// StoreConfig configures a Store. A nil *StoreConfig uses the defaults.
type StoreConfig struct {
	// Schema holds outboxd's tables and River's. Defaults to DefaultSchema ("outbox").
	Schema string

	// Keyring seals and opens signing secrets and custom header values. Without
	// one, creating a subscription, setting its headers and loading a delivery's
	// secrets fail with ErrNoEncryptionKey; reads, which show no secret, work.
	Keyring *secretbox.Keyring

	// Guard validates subscription URLs. Defaults to a zero netguard.Guard, which
	// refuses loopback, private, link-local and metadata addresses.
	Guard *netguard.Guard
}

// Store reads and writes outboxd's tables. It is the only owner of outboxd's SQL:
// every query is in sql/queries and reaches the database through here.
type Store struct {
	db      DB
	schema  string
	keyring *secretbox.Keyring
	guard   *netguard.Guard
	queries *dbsqlc.Queries
	rewrite *sync.Map
}

// NewStore returns a store on db.
func NewStore(db DB, config *StoreConfig) (*Store, error) {
	if config == nil {
		config = &StoreConfig{}
	}
	schema := cmp.Or(config.Schema, DefaultSchema)
	if err := ValidateSchemaName(schema); err != nil {
		return nil, err
	}
	guard := config.Guard
	if guard == nil {
		guard = &netguard.Guard{}
	}
	return &Store{
		db:      db,
		schema:  schema,
		keyring: config.Keyring,
		guard:   guard,
		queries: dbsqlc.New(),
		rewrite: &sync.Map{},
	}, nil
}

// Schema is the schema the store works in.
func (s *Store) Schema() string { return s.schema }

// Keyring is the store's keyring (nil without an encryption key), for the few
// secrets kept outside subscriptions (Letta's callback secret).
func (s *Store) Keyring() *secretbox.Keyring { return s.keyring }

// on wraps an executor so queries address the store's schema.
func (s *Store) on(exec Executor) dbsqlc.DBTX {
	return &schemaExecutor{exec: exec, schema: s.schema, cache: s.rewrite}
}

// inTx runs fn in a transaction on the store's database.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Settings are the values in outbox.settings.
type Settings struct {
	// MaxPayloadBytes is the largest accepted payload, as bytes of JSON text.
	MaxPayloadBytes int `json:"max_payload_bytes"`

	// EventPartitionInterval is how much of created_at one partition of
	// outbox.events covers: a day unless an operator chose a width that divides
	// one.
	EventPartitionInterval time.Duration `json:"event_partition_interval"`
}

// Settings reads outbox.settings.
func (s *Store) Settings(ctx context.Context) (*Settings, error) {
	row, err := s.queries.SettingsGet(ctx, s.on(s.db))
	if err != nil {
		return nil, translateError("get settings", err)
	}
	width := time.Duration(row.EventPartitionInterval.Microseconds)*time.Microsecond +
		time.Duration(row.EventPartitionInterval.Days)*24*time.Hour
	return &Settings{MaxPayloadBytes: int(row.MaxPayloadBytes), EventPartitionInterval: width}, nil
}
