package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox/outboxtest"
)

// A daemon says at start when autovacuum does not look after its tables: the
// server's setting, or a table switched off, which it names.
func TestDaemonWarnsWithoutAutovacuum(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var server string
	require.NoError(t, outboxtest.Pool(t).QueryRow(ctx, "SHOW autovacuum").Scan(&server))
	warnings := func(logs *logRecorder) []loggedRecord {
		return logs.records(func(r loggedRecord) bool {
			return r.Level == slog.LevelWarn && strings.HasPrefix(r.Message, autovacuumWarning)
		})
	}

	// Tables left to autovacuum: a warning only if the server does not run it.
	logs := newLogRecorder()
	setupDaemon(t, func(c *Config) { c.Logger = slog.New(logs) })
	if server == "off" {
		require.Len(t, warnings(logs), 1)
		require.Equal(t, "true", warnings(logs)[0].Attrs["server_autovacuum_off"])
	} else {
		require.Empty(t, warnings(logs))
	}

	// river_job switched off: named, whatever the server does.
	store := outboxtest.Store(t)
	_, err := outboxtest.Pool(t).Exec(ctx, fmt.Sprintf("ALTER TABLE %s.river_job SET (autovacuum_enabled = false)", store.Schema()))
	require.NoError(t, err)
	logs = newLogRecorder()
	startDaemon(t, ctx, store, outboxtest.NewPool(t, 12), func(c *Config) { c.Logger = slog.New(logs) })
	require.Len(t, warnings(logs), 1)
	require.Equal(t, "[river_job]", warnings(logs)[0].Attrs["tables_autovacuum_off"])
}
