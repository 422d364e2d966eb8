// Package outboxtest owns the test harness for outboxd's packages: a real Postgres
// reached through TEST_DATABASE_URL (or DATABASE_URL, or the local default), one
// freshly migrated schema per test, and factories for rows. Tests never mock the
// database; a test that cannot reach Postgres fails with a message saying how to
// provide one. It is imported only from _test.go files.
package outboxtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/migrations"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/netguard"
	"github.com/outboxd/outboxd/outbox/secretbox"
)

// DefaultDatabaseURL is used when neither TEST_DATABASE_URL nor DATABASE_URL is set.
const DefaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// DatabaseURL is where tests connect: TEST_DATABASE_URL, else DATABASE_URL, else DefaultDatabaseURL.
func DatabaseURL() string {
	for _, name := range []string{"TEST_DATABASE_URL", "DATABASE_URL"} {
		if url := os.Getenv(name); url != "" {
			return url
		}
	}
	return DefaultDatabaseURL
}

var sharedPool = struct {
	once sync.Once
	pool *pgxpool.Pool
	err  error
}{}

// Pool returns a connection pool shared by the tests of this process. It fails the
// test, never skips it, when Postgres cannot be reached.
func Pool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	sharedPool.once.Do(func() {
		sharedPool.pool, sharedPool.err = connect(DatabaseURL(), 10)
	})
	if sharedPool.err != nil {
		tb.Fatalf("outboxd tests need Postgres: %v\nSet TEST_DATABASE_URL, or run `make test`, which finds or starts one.", sharedPool.err)
	}
	return sharedPool.pool
}

// NewPool returns a pool of its own for one test (for daemons, which hold
// connections for their lifetime), closed when the test ends.
func NewPool(tb testing.TB, maxConns int32) *pgxpool.Pool {
	tb.Helper()
	pool, err := connect(DatabaseURL(), maxConns)
	if err != nil {
		tb.Fatalf("outboxd tests need Postgres: %v\nSet TEST_DATABASE_URL, or run `make test`, which finds or starts one.", err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

func connect(url string, maxConns int32) (*pgxpool.Pool, error) {
	config, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %w", err)
	}
	config.MaxConns = maxConns
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, config)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to %s:%d: %w", config.ConnConfig.Host, config.ConnConfig.Port, err)
	}
	return pool, nil
}

// Schema creates a uniquely named schema, migrates River and outboxd into it, and
// drops it when the test ends.
func Schema(tb testing.TB) string {
	tb.Helper()
	pool := Pool(tb)
	schema := "t_" + randomHex(tb, 6)
	ctx := context.Background()

	migrator, err := migrations.New(pool, &migrations.Config{Schema: schema})
	require.NoError(tb, err)
	_, err = migrator.Up(ctx)
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, dropSchema(context.WithoutCancel(ctx), pool, schema)) })
	return schema
}

// dropSchema drops schema with everything in it. A daemon process a test killed
// leaves its server sessions running their last statements until they next
// talk to it, and DROP SCHEMA, locking table after table, can deadlock with
// one of them; Postgres then cancels one side, the drop is tried again once the
// other side has moved on.
func dropSchema(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	for attempt := 1; ; attempt++ {
		_, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
		var pgErr *pgconn.PgError
		if err == nil || attempt == 5 || !errors.As(err, &pgErr) || pgErr.Code != "40P01" { // deadlock_detected
			return err
		}
		time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
	}
}

// Keyring returns a keyring with a new random key.
func Keyring(tb testing.TB) *secretbox.Keyring {
	tb.Helper()
	return secretbox.NewKeyring(Key(tb))
}

// Key returns a new random encryption key.
func Key(tb testing.TB) *secretbox.Key {
	tb.Helper()
	key, err := secretbox.NewKey(randomBytes(tb, secretbox.KeySize))
	require.NoError(tb, err)
	return key
}

// LoopbackGuard allows loopback addresses, for receivers started by tests.
func LoopbackGuard() *netguard.Guard {
	return &netguard.Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}}
}

// Store returns a store on a fresh schema with a keyring and LoopbackGuard.
func Store(tb testing.TB) *outbox.Store {
	tb.Helper()
	store, err := outbox.NewStore(Pool(tb), &outbox.StoreConfig{
		Schema:  Schema(tb),
		Keyring: Keyring(tb),
		Guard:   LoopbackGuard(),
	})
	require.NoError(tb, err)
	return store
}

// SubscriptionOpts are the fields a test cares about; the rest get defaults.
type SubscriptionOpts struct {
	URL            string // default http://127.0.0.1:9/ (discard port)
	EventTypes     []string
	AgentID        string
	OrganizationID string
	RetrySchedule  outbox.RetrySchedule
	Headers        map[string]string
	MaxInFlight    int
	Ordering       outbox.Ordering
	OnDead         outbox.OnDead
}

// Subscription creates a subscription.
func Subscription(ctx context.Context, tb testing.TB, store *outbox.Store, opts *SubscriptionOpts) *outbox.SubscriptionCreateResult {
	tb.Helper()
	if opts == nil {
		opts = &SubscriptionOpts{}
	}
	url := opts.URL
	if url == "" {
		url = "http://127.0.0.1:9/"
	}
	result, err := store.SubscriptionCreate(ctx, &outbox.SubscriptionCreateParams{
		URL:            url,
		EventTypes:     opts.EventTypes,
		AgentID:        opts.AgentID,
		OrganizationID: opts.OrganizationID,
		RetrySchedule:  opts.RetrySchedule,
		Headers:        opts.Headers,
		MaxInFlight:    opts.MaxInFlight,
		Ordering:       opts.Ordering,
		OnDead:         opts.OnDead,
	})
	require.NoError(tb, err)
	return result
}

// EventOpts are the fields a test cares about; the rest get defaults.
type EventOpts struct {
	Type           string // default agent.step.completed
	AgentID        string
	OrganizationID string
	Payload        any // marshalled to JSON; default {"step_id": "step-<random>"}
}

// Event publishes and commits an event.
func Event(ctx context.Context, tb testing.TB, store *outbox.Store, opts *EventOpts) *outbox.Event {
	tb.Helper()
	if opts == nil {
		opts = &EventOpts{}
	}
	eventType := opts.Type
	if eventType == "" {
		eventType = "agent.step.completed"
	}
	payload := opts.Payload
	if payload == nil {
		payload = map[string]string{"step_id": "step-" + randomHex(tb, 4)}
	}
	data, err := json.Marshal(payload)
	require.NoError(tb, err)
	event, err := store.Publish(ctx, &outbox.PublishParams{
		Type:           eventType,
		AgentID:        opts.AgentID,
		OrganizationID: opts.OrganizationID,
		Payload:        data,
	})
	require.NoError(tb, err)
	return event
}

func randomBytes(tb testing.TB, n int) []byte {
	tb.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(tb, err)
	return b
}

func randomHex(tb testing.TB, n int) string {
	tb.Helper()
	return hex.EncodeToString(randomBytes(tb, n))
}
