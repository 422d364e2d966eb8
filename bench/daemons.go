package main

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgxpool"
)

func runDaemons(ctx context.Context, pool *pgxpool.Pool, opts *options) error {
	return errors.New("daemons: not yet")
}
