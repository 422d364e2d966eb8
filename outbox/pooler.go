package outbox

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/outbox/internal/dbsqlc"
)

// ErrTransactionPooler says the connection goes through a pooler in
// transaction mode (PgBouncer's pool_mode = transaction), which hands a
// session's server process to other clients between transactions.
var ErrTransactionPooler = errors.New("connected through a connection pooler in transaction mode (such as PgBouncer's pool_mode = transaction)")

// DetectTransactionPooler reports whether pool reaches Postgres through a
// pooler in transaction mode. It holds two connections of pool: after one
// ends a statement, a transaction begun on the other gets a server process; a
// pooler in transaction mode gives it the first one's (PgBouncer reuses the
// most recently freed server), whereas Postgres itself, or a pooler in session
// mode, keeps each server process with its client.
func DetectTransactionPooler(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	first, err := pool.Acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("detect pooler: %w", err)
	}
	defer first.Release()
	second, err := pool.Acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("detect pooler: %w", err)
	}
	defer second.Release()

	q := dbsqlc.New() // pg_backend_pid() needs no schema
	pooled := false
	err = func() error {
		before, err := q.BackendPID(ctx, first)
		if err != nil {
			return err
		}
		return pgx.BeginFunc(ctx, second, func(tx pgx.Tx) error {
			other, err := q.BackendPID(ctx, tx)
			if err != nil {
				return err
			}
			after, err := q.BackendPID(ctx, first)
			if err != nil {
				return err
			}
			pooled = other == before || after != before
			return nil
		})
	}()
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "26000" || pgErr.Code == "42P05") {
		// A statement prepared on one session is missing on it, or already on
		// another (invalid_sql_statement_name, duplicate_prepared_statement):
		// sessions share server processes. Only a pooler in transaction mode
		// does that.
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("detect pooler: %w", err)
	}
	return pooled, nil
}
