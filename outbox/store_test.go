package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/outboxtest"
)

// beginner is anything a test can open a transaction on: a pool or a connection.
type beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// begin opens a transaction that is rolled back when the test ends, so a failing
// assertion can never leave a connection checked out.
func begin(ctx context.Context, t *testing.T, db beginner) pgx.Tx {
	t.Helper()
	tx, err := db.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(context.WithoutCancel(ctx)) })
	return tx
}

// countRows counts the rows of one of the store's tables.
func countRows(ctx context.Context, t *testing.T, store *outbox.Store, table string) int {
	t.Helper()
	var n int
	err := outboxtest.Pool(t).QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM %s.%s", store.Schema(), table)).Scan(&n)
	require.NoError(t, err)
	return n
}

// requireValidationError asserts err is a *outbox.ValidationError on field whose
// message contains message.
func requireValidationError(t *testing.T, err error, field, message string) *outbox.ValidationError {
	t.Helper()
	require.Error(t, err)
	var verr *outbox.ValidationError
	require.True(t, errors.As(err, &verr), "want a *outbox.ValidationError, got %T: %v", err, err)
	require.Equal(t, field, verr.Field, "field of %q", verr.Error())
	require.Contains(t, verr.Message, message)
	return verr
}

// requirePgError asserts err carries a Postgres error and returns it.
func requirePgError(t *testing.T, err error) *pgconn.PgError {
	t.Helper()
	require.Error(t, err)
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "want a *pgconn.PgError, got %T: %v", err, err)
	return pgErr
}

func TestNewStore(t *testing.T) {
	t.Parallel()

	t.Run("DefaultsToOutboxSchema", func(t *testing.T) {
		t.Parallel()

		store, err := outbox.NewStore(outboxtest.Pool(t), nil)
		require.NoError(t, err)
		require.Equal(t, outbox.DefaultSchema, store.Schema())
		require.Equal(t, "outbox", store.Schema())

		store, err = outbox.NewStore(outboxtest.Pool(t), &outbox.StoreConfig{})
		require.NoError(t, err)
		require.Equal(t, "outbox", store.Schema())
	})

	t.Run("KeepsConfiguredSchema", func(t *testing.T) {
		t.Parallel()

		store, err := outbox.NewStore(outboxtest.Pool(t), &outbox.StoreConfig{Schema: "tenant_a"})
		require.NoError(t, err)
		require.Equal(t, "tenant_a", store.Schema())
	})

	t.Run("RejectsInvalidSchema", func(t *testing.T) {
		t.Parallel()

		for _, schema := range []string{"Outbox", "select", "pg_x", "a-b", "1abc"} {
			store, err := outbox.NewStore(outboxtest.Pool(t), &outbox.StoreConfig{Schema: schema})
			require.Error(t, err, schema)
			require.Nil(t, store)
			require.Contains(t, err.Error(), fmt.Sprintf("%q", schema))
		}
	})
}

func TestSettings(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		ctx   context.Context
		store *outbox.Store
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		return &testBundle{ctx: context.Background(), store: outboxtest.Store(t)}
	}

	t.Run("Defaults", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		settings, err := b.store.Settings(b.ctx)
		require.NoError(t, err)
		require.Equal(t, 262144, settings.MaxPayloadBytes)
	})

	t.Run("ReadsChangedValue", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		_, err := outboxtest.Pool(t).Exec(b.ctx, fmt.Sprintf("UPDATE %s.settings SET max_payload_bytes = 4096", b.store.Schema()))
		require.NoError(t, err)
		settings, err := b.store.Settings(b.ctx)
		require.NoError(t, err)
		require.Equal(t, 4096, settings.MaxPayloadBytes)
	})

	t.Run("LimitIsChecked", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		for _, limit := range []int{1, 67108865} {
			_, err := outboxtest.Pool(t).Exec(b.ctx, fmt.Sprintf("UPDATE %s.settings SET max_payload_bytes = $1", b.store.Schema()), limit)
			pgErr := requirePgError(t, err)
			require.Equal(t, "settings_max_payload_bytes", pgErr.ConstraintName, limit)
		}
	})

	t.Run("SingleRow", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		_, err := outboxtest.Pool(t).Exec(b.ctx, fmt.Sprintf("INSERT INTO %s.settings (singleton) VALUES (true)", b.store.Schema()))
		require.Equal(t, "23505", requirePgError(t, err).Code, "a second settings row is refused")
		_, err = outboxtest.Pool(t).Exec(b.ctx, fmt.Sprintf("INSERT INTO %s.settings (singleton) VALUES (false)", b.store.Schema()))
		require.Equal(t, "settings_singleton", requirePgError(t, err).ConstraintName)
		require.Equal(t, 1, countRows(b.ctx, t, b.store, "settings"))
	})
}

func TestRewriteSchema(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name   string
		sql    string
		schema string
		want   string
	}{
		{"Qualified", "SELECT * FROM outbox.events", "tenant_a", "SELECT * FROM tenant_a.events"},
		{"Bare", "outbox.events", "t1", "t1.events"},
		{"Several", "INSERT INTO outbox.x SELECT * FROM outbox.y JOIN outbox.z USING (id)", "s", "INSERT INTO s.x SELECT * FROM s.y JOIN s.z USING (id)"},
		{"FunctionCall", "SELECT outbox.publish('a.b')", "s", "SELECT s.publish('a.b')"},
		{"AfterParen", "RETURNS SETOF(outbox.events)", "s", "RETURNS SETOF(s.events)"},
		{"WakeChannel", "SELECT pg_notify('outbox.wake', '')", "s", "SELECT pg_notify('s.wake', '')"},
		{"JobKindUntouched", "WHERE j.kind = 'outboxd.delivery'", "s", "WHERE j.kind = 'outboxd.delivery'"},
		{"LongerNameUntouched", "SELECT * FROM myoutbox.events", "s", "SELECT * FROM myoutbox.events"},
		{"UnderscoredNameUntouched", "SELECT * FROM my_outbox.events", "s", "SELECT * FROM my_outbox.events"},
		{"WithoutDotUntouched", "CREATE SCHEMA outbox; -- the outbox", "s", "CREATE SCHEMA outbox; -- the outbox"},
		{"DefaultSchemaUnchanged", "SELECT * FROM outbox.events", "outbox", "SELECT * FROM outbox.events"},
		{"EmptySchemaUnchanged", "SELECT * FROM outbox.events", "", "SELECT * FROM outbox.events"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			require.Equal(t, tt.want, outbox.RewriteSchema(tt.sql, tt.schema))
		})
	}
}

func TestValidateSchemaName(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		schema  string
		wantErr string // empty when valid
	}{
		{"Default", "outbox", ""},
		{"Underscored", "my_schema", ""},
		{"LeadingUnderscore", "_x", ""},
		{"Digits", "tenant_42", ""},
		{"FortyCharacters", strings.Repeat("a", 40), ""},
		{"UpperCase", "Outbox", "lower-case letters"},
		{"LeadingDigit", "1abc", "lower-case letters"},
		{"Dash", "a-b", "lower-case letters"},
		{"Dot", "a.b", "lower-case letters"},
		{"Space", "a b", "lower-case letters"},
		{"Quote", `a"b`, "lower-case letters"},
		{"Empty", "", "lower-case letters"},
		{"FortyOneCharacters", strings.Repeat("a", 41), "at most 40 characters"},
		{"ReservedSelect", "select", "reserved SQL word"},
		{"ReservedUser", "user", "reserved SQL word"},
		{"ReservedTable", "table", "reserved SQL word"},
		{"PostgresPrefix", "pg_foo", "reserved by Postgres"},
		{"PostgresPrefixOnly", "pg_", "reserved by Postgres"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			err := outbox.ValidateSchemaName(tt.schema)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.wantErr)
			require.Contains(t, err.Error(), fmt.Sprintf("%q", tt.schema))
		})
	}
}

func TestValidationErrorMessage(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		err  *outbox.ValidationError
		want string
	}{
		{"FieldAndMessage", &outbox.ValidationError{Field: "url", Message: "required"}, "url: required"},
		{"WithHint", &outbox.ValidationError{Field: "type", Message: "bad", Hint: "use a.b"}, "type: bad (use a.b)"},
		{"NoField", &outbox.ValidationError{Message: "bad"}, "bad"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			require.Equal(t, tt.want, tt.err.Error())
		})
	}
}

func TestSchemasAreIsolated(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	storeA := outboxtest.Store(t)
	storeB := outboxtest.Store(t)
	require.NotEqual(t, storeA.Schema(), storeB.Schema())
	require.NotEqual(t, outbox.DefaultSchema, storeA.Schema())

	event := outboxtest.Event(ctx, t, storeA, nil)
	sub := outboxtest.Subscription(ctx, t, storeA, nil)

	_, err := storeB.EventGet(ctx, event.ID)
	require.ErrorIs(t, err, outbox.ErrNotFound)
	_, err = storeB.SubscriptionGet(ctx, sub.ID)
	require.ErrorIs(t, err, outbox.ErrNotFound)
	require.Zero(t, countRows(ctx, t, storeB, "events"))

	got, err := storeA.EventGet(ctx, event.ID)
	require.NoError(t, err)
	require.Equal(t, event.ID, got.ID)

	// A store on the same schema sees the same rows.
	again, err := outbox.NewStore(outboxtest.Pool(t), &outbox.StoreConfig{Schema: storeA.Schema()})
	require.NoError(t, err)
	got, err = again.EventGet(ctx, event.ID)
	require.NoError(t, err)
	require.Equal(t, event.Seq, got.Seq)
}

func TestStoreOnMissingSchemaFails(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	store, err := outbox.NewStore(outboxtest.Pool(t), &outbox.StoreConfig{Schema: "t_never_migrated"})
	require.NoError(t, err)
	_, err = store.Publish(ctx, &outbox.PublishParams{Type: "agent.step.completed"})
	require.Error(t, err)
	require.Contains(t, err.Error(), "t_never_migrated")
	var verr *outbox.ValidationError
	require.False(t, errors.As(err, &verr), "a missing schema is not bad input")
}

func TestWake(t *testing.T) {
	t.Parallel()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store := outboxtest.Store(t)
	channel := outbox.WakeChannel(store.Schema())
	require.Equal(t, store.Schema()+".wake", channel)

	listener, err := outboxtest.NewPool(t, 1).Acquire(ctx)
	require.NoError(t, err)
	t.Cleanup(listener.Release)
	_, err = listener.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize())
	require.NoError(t, err)

	// Nothing is sent until the transaction commits.
	tx := begin(ctx, t, outboxtest.Pool(t))
	require.NoError(t, store.WakeTx(ctx, tx))
	require.NoError(t, tx.Rollback(ctx))

	tx = begin(ctx, t, outboxtest.Pool(t))
	require.NoError(t, store.WakeTx(ctx, tx))
	require.NoError(t, tx.Commit(ctx))

	notification, err := listener.Conn().WaitForNotification(ctx)
	require.NoError(t, err)
	require.Equal(t, channel, notification.Channel)
	require.Empty(t, notification.Payload)

	// The rolled-back wake was never delivered: the one we got is the only one.
	// A final marker proves the queue is empty once it arrives.
	_, err = outboxtest.Pool(t).Exec(ctx, "SELECT pg_notify($1, 'marker')", channel)
	require.NoError(t, err)
	notification, err = listener.Conn().WaitForNotification(ctx)
	require.NoError(t, err)
	require.Equal(t, "marker", notification.Payload)
}
