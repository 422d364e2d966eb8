package outbox_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox/outboxtest"
)

func TestAutovacuum(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	store := outboxtest.Store(t)
	pool := outboxtest.Pool(t)
	var server string
	require.NoError(t, pool.QueryRow(ctx, "SHOW autovacuum").Scan(&server))

	// A fresh schema leaves every table to autovacuum; the server may not run it
	// (CI's Postgres does not).
	state, err := store.Autovacuum(ctx)
	require.NoError(t, err)
	require.Equal(t, server == "off", state.ServerOff)
	require.Empty(t, state.TablesOff)
	require.Equal(t, server == "off", state.Off())

	// A table switched off is named, and only this schema's tables count.
	_, err = pool.Exec(ctx, fmt.Sprintf("ALTER TABLE %s.river_job SET (autovacuum_enabled = false)", store.Schema()))
	require.NoError(t, err)
	state, err = store.Autovacuum(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"river_job"}, state.TablesOff)
	require.True(t, state.Off())
	other, err := outboxtest.Store(t).Autovacuum(ctx)
	require.NoError(t, err)
	require.Empty(t, other.TablesOff)
}
