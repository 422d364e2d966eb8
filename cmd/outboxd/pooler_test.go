package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/outboxtest"
)

// startPgBouncer runs Debian's pgbouncer in front of the tests' Postgres in
// transaction pooling mode, with a few server connections so that sessions
// really share them, and returns the URL of the tests' database through it.
// It fails (never skips) when pgbouncer is missing under CI.
func startPgBouncer(t *testing.T, serverConns int) string {
	t.Helper()
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("pgbouncer is not installed (apt-get install pgbouncer); .ci/run installs it")
		}
		t.Skip("pgbouncer is not installed (apt-get install pgbouncer); CI installs it")
	}
	target, err := pgx.ParseConfig(outboxtest.DatabaseURL())
	require.NoError(t, err)

	dir, err := os.MkdirTemp("", "outboxd-pgbouncer-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o777)) //nolint:gosec // pgbouncer may run as another user
	port := freePort(t)
	config := fmt.Sprintf(`[databases]
* = host=%s port=%d

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = transaction
default_pool_size = %d
max_client_conn = 500
logfile = %s
pidfile =
`, target.Host, target.Port, port, filepath.Join(dir, "users.txt"), serverConns, filepath.Join(dir, "pgbouncer.log"))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "users.txt"), []byte(`"`+target.User+`" ""`+"\n"), 0o644)) //nolint:gosec // no secret
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pgbouncer.ini"), []byte(config), 0o644))                  //nolint:gosec // no secret

	args := []string{filepath.Join(dir, "pgbouncer.ini")}
	if u, err := user.Current(); err == nil && u.Uid == "0" {
		args = append([]string{"-u", "postgres"}, args...) // pgbouncer refuses to run as root
	}
	cmd := exec.Command(bin, args...)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "pgbouncer.log"))
			t.Fatalf("pgbouncer did not start: %v\n%s", err, log)
		}
		time.Sleep(20 * time.Millisecond) // polling a port that is not open yet
	}

	through, err := url.Parse(outboxtest.DatabaseURL())
	require.NoError(t, err)
	through.Host = fmt.Sprintf("127.0.0.1:%d", port)
	return through.String()
}

func TestTransactionPoolerIsDetectedAndServed(t *testing.T) {
	t.Parallel()

	bouncer := startPgBouncer(t, 4)
	b := setupProcess(t, 0)

	// The daemon and migrate refuse a transaction-mode pooler they were not told of.
	env := map[string]string{}
	for k, v := range b.cliEnv {
		env[k] = v
	}
	// (With pgx's default prepared statements, or without them.)
	for _, databaseURL := range []string{bouncer, withParam(bouncer, "default_query_exec_mode=exec")} {
		env["DATABASE_URL"] = databaseURL
		res := runCLI(t, env, "", "run", "--http-addr", "127.0.0.1:0")
		require.Equal(t, 1, res.code, res.stderr)
		require.Contains(t, res.stderr, "connection pooler in transaction mode")
		require.Contains(t, res.stderr, "--pooler transaction")
		res = runCLI(t, env, "", "migrate", "up")
		require.Equal(t, 1, res.code, res.stderr)
		require.Contains(t, res.stderr, "session lock")
	}
	env["OUTBOXD_POOLER"] = "transaction"
	res := runCLI(t, env, "", "migrate", "up")
	require.Equal(t, 1, res.code, res.stderr)
	require.Contains(t, res.stderr, "point it at Postgres directly")

	// Told, the daemons poll, prepare nothing, and lose nothing; producers go
	// through the pooler too.
	bouncerEnv := []string{"DATABASE_URL=" + smallPool(bouncer), "OUTBOXD_POOLER=transaction"}
	var daemons []*daemonProcess
	for range 2 {
		d := b.startDaemonEnv(t, bouncerEnv)
		daemons = append(daemons, d)
	}
	config, err := pgxpool.ParseConfig(bouncer)
	require.NoError(t, err)
	config.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
	config.MaxConns = 8
	producers, err := pgxpool.NewWithConfig(b.ctx, config)
	require.NoError(t, err)
	t.Cleanup(producers.Close)
	store, err := outbox.NewStore(producers, &outbox.StoreConfig{Schema: b.store.Schema()})
	require.NoError(t, err)

	published := make([]string, 0, 300)
	for i := range 300 {
		e, err := store.Publish(context.Background(), &outbox.PublishParams{Type: "agent.step.completed", Payload: []byte(fmt.Sprintf(`{"i":%d}`, i))})
		require.NoError(t, err)
		published = append(published, e.ID)
	}
	b.receiver.waitFor(t, "every event through the pooler", func(_ int, received map[string]int) bool {
		for _, id := range published {
			if received[id] == 0 {
				return false
			}
		}
		return true
	})
	require.Len(t, b.receiver.snapshot(), len(published))
	for _, d := range daemons {
		require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
		require.NoError(t, d.wait(t), d.log())
		require.NotContains(t, d.log(), "level=ERROR", "no errors behind the pooler")
	}
}

func withParam(databaseURL, param string) string {
	if strings.Contains(databaseURL, "?") {
		return databaseURL + "&" + param
	}
	return databaseURL + "?" + param
}
