package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox/letta/lettatest"
	"github.com/outboxd/outboxd/outbox/outboxtest"
)

func TestLettaCommands(t *testing.T) {
	t.Parallel()
	b := setupCLI(t)
	suffix := make([]byte, 6)
	_, err := rand.Read(suffix)
	require.NoError(t, err)
	lettaSchema := "letta_" + hex.EncodeToString(suffix)
	pool := outboxtest.Pool(t)
	require.NoError(t, lettatest.Create(context.Background(), pool, lettaSchema))
	t.Cleanup(func() {
		_, err := pool.Exec(context.WithoutCancel(t.Context()), "DROP SCHEMA "+lettaSchema+" CASCADE")
		require.NoError(t, err)
	})

	res := b.run(t, "", "letta", "status")
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "not installed")

	res = b.run(t, "", "letta", "install")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, `required flag(s) "letta-schema" not set`)
	res = b.run(t, "", "letta", "install", "--letta-schema", "nowhere")
	require.Equal(t, 1, res.code)
	require.Equal(t, "outboxd: no Letta tables in schema nowhere; pass the schema Letta uses (--letta-schema public or letta)\n", res.stderr)
	res = b.run(t, "", "letta", "install", "--letta-schema", lettaSchema, "--events", "agent.nap")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, `unknown Letta event "agent.nap"`)

	res = b.run(t, "", "letta", "install", "--letta-schema", lettaSchema)
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "installed Letta triggers v1 on schema "+lettaSchema)
	res = b.run(t, "", "letta", "install", "--letta-schema", lettaSchema, "--events", "agent.run.completed,agent.step.completed")
	require.Equal(t, 0, res.code, res.stderr)

	res = b.run(t, "", "letta", "status", "--json")
	require.Equal(t, 0, res.code, res.stderr)
	var status map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &status))
	require.Equal(t, true, status["installed"])
	require.Equal(t, lettaSchema, status["letta_schema"])
	require.Equal(t, []any{"agent.run.completed", "agent.step.completed"}, status["events"])

	res = b.run(t, "", "letta", "uninstall", "--letta-schema", "other")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "installed on schema "+lettaSchema)
	res = b.run(t, "", "letta", "uninstall")
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, b.run(t, "", "letta", "status").stdout, "not installed")
}
