package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// runCLIOnTerminal runs a command line as if a person typed it, answering
// questions with stdin.
func runCLIOnTerminal(t *testing.T, env map[string]string, stdin string, args ...string) cliResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	a := &app{
		lookupEnv:       func(name string) (string, bool) { v, ok := env[name]; return v, ok },
		stdin:           strings.NewReader(stdin),
		stdout:          &stdout,
		stderr:          &stderr,
		stdinIsTerminal: func() bool { return true },
	}
	code := execute(t.Context(), a, args)
	return cliResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// migrationVersions returns the schema's current and latest versions.
func migrationVersions(t *testing.T, b *cliBundle) (outboxdCurrent, outboxdLatest, riverCurrent, riverLatest int) {
	t.Helper()
	res := b.run(t, "", "migrate", "status", "--json")
	require.Equal(t, 0, res.code, res.stderr)
	var status struct {
		OutboxdCurrent int `json:"outboxd_current"`
		OutboxdLatest  int `json:"outboxd_latest"`
		RiverCurrent   int `json:"river_current"`
		RiverLatest    int `json:"river_latest"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &status))
	return status.OutboxdCurrent, status.OutboxdLatest, status.RiverCurrent, status.RiverLatest
}

func descending(from int) string {
	versions := make([]string, from)
	for i := range versions {
		versions[i] = fmt.Sprint(from - i)
	}
	return "[" + strings.Join(versions, " ") + "]"
}

func TestMigrateDownSaysWhatItCannotDo(t *testing.T) {
	t.Parallel()

	b := setupCLI(t)
	_, latest, _, riverLatest := migrationVersions(t, b)

	res := b.run(t, "", "migrate", "down", "--steps", fmt.Sprint(latest+4), "--yes")
	require.Equal(t, 1, res.code)
	require.Equal(t, fmt.Sprintf("outboxd: only %d outboxd migrations are applied in schema %s, so --steps %d cannot be done; nothing was changed "+
		"(--steps %d undoes them all; --all removes River's tables as well)\n", latest, b.schema, latest+4, latest), res.stderr)
	current, _, _, _ := migrationVersions(t, b)
	require.Equal(t, latest, current, "nothing was rolled back")

	res = b.run(t, "", "migrate", "down", "--steps", fmt.Sprint(latest), "--yes")
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "outboxd: rolled back versions "+descending(latest)+"\n")
	require.Contains(t, res.stderr, "roll back outboxd 1 (core)\n")

	res = b.run(t, "", "migrate", "down", "--yes")
	require.Equal(t, 1, res.code)
	require.Equal(t, "outboxd: nothing to undo: no outboxd migration is applied in schema "+b.schema+" (River's tables are there: --all removes them)\n", res.stderr)

	res = b.run(t, "", "migrate", "down", "--all", "--yes")
	require.Equal(t, 0, res.code, res.stderr)
	require.Equal(t, "River: rolled back versions "+descending(riverLatest)+"\nDropped schema "+b.schema+": nothing else was in it.\n", res.stdout)
	require.Contains(t, res.stderr, "roll back river 1 (create river migration)\n")
	require.Contains(t, res.stderr, "drop schema "+b.schema+", if nothing else is left in it\n")

	res = b.run(t, "", "migrate", "down", "--all", "--yes")
	require.Equal(t, 0, res.code, res.stderr)
	require.Equal(t, "Nothing to undo: schema "+b.schema+" holds no outboxd or River migrations.\n", res.stdout)
	res = b.run(t, "", "migrate", "down", "--yes")
	require.Equal(t, 1, res.code)
	require.Equal(t, "outboxd: nothing to undo: no outboxd migration is applied in schema "+b.schema+"\n", res.stderr)
}

func TestMigrateDownAllListsBothLines(t *testing.T) {
	t.Parallel()

	b := setupCLI(t)
	_, latest, _, riverLatest := migrationVersions(t, b)
	res := b.run(t, "", "migrate", "down", "--all", "--yes", "--json")
	require.Equal(t, 0, res.code, res.stderr)
	var result struct {
		Outboxd       []int `json:"outboxd"`
		River         []int `json:"river"`
		SchemaDropped bool  `json:"schema_dropped"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &result))
	require.Len(t, result.Outboxd, latest)
	require.Len(t, result.River, riverLatest)
	require.True(t, result.SchemaDropped)
	require.Contains(t, res.stderr, fmt.Sprintf("roll back outboxd %d (", latest))
	require.Contains(t, res.stderr, fmt.Sprintf("roll back river %d (", riverLatest))
}

func TestMigrateDownAsksFirst(t *testing.T) {
	t.Parallel()

	b := setupCLI(t)
	_, latest, _, _ := migrationVersions(t, b)
	unchanged := func() {
		t.Helper()
		current, _, _, _ := migrationVersions(t, b)
		require.Equal(t, latest, current, "nothing was rolled back")
	}

	// Where nobody can answer, --yes is needed; what would be done is shown.
	res := b.run(t, "", "migrate", "down")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, fmt.Sprintf("In schema %s (database ", b.schema))
	require.Contains(t, res.stderr, fmt.Sprintf("  roll back outboxd %d (", latest))
	require.Contains(t, res.stderr, "The tables these migrations created are dropped with all their data.\n")
	require.Contains(t, res.stderr, "outboxd: migrate down drops tables and their data: pass --yes to confirm (stdin is not a terminal, so outboxd cannot ask)\n")
	unchanged()
	res = b.run(t, "y\n", "migrate", "down", "--all")
	require.Equal(t, 1, res.code, "an answer on a pipe is not a confirmation")
	unchanged()

	// On a terminal it asks.
	for _, answer := range []string{"n\n", "\n", "", "maybe\n"} {
		res = runCLIOnTerminal(t, b.env, answer, "migrate", "down")
		require.Equal(t, 1, res.code, "answer %q", answer)
		require.Contains(t, res.stderr, "Roll back? [y/N] ")
		require.True(t, strings.HasSuffix(res.stderr, "outboxd: not confirmed: nothing was changed\n"), res.stderr)
		unchanged()
	}
	res = runCLIOnTerminal(t, b.env, "y\n", "migrate", "down")
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, fmt.Sprintf("outboxd: rolled back versions [%d]\n", latest))
	res = runCLIOnTerminal(t, b.env, "YES\n", "migrate", "down", "--all")
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "Dropped schema "+b.schema)
}

// The real binary decides by itself that a pipe is not a terminal.
func TestMigrateDownRefusesWithoutATerminal(t *testing.T) {
	t.Parallel()

	b := setupCLI(t)
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, "migrate", "down")
	cmd.Env = append(os.Environ(), runAsOutboxd+"=1", "DATABASE_URL="+b.env["DATABASE_URL"], "OUTBOXD_SCHEMA="+b.schema)
	cmd.Stdin = strings.NewReader("y\n")
	out, err := cmd.CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "pass --yes to confirm (stdin is not a terminal")
	current, latest, _, _ := migrationVersions(t, b)
	require.Equal(t, latest, current)
}

func TestMigrateDownWarnsOfDaemonsWhichTurnUnready(t *testing.T) {
	t.Parallel()

	b := newProcessBundle(t)
	daemon := b.startDaemon(t)
	readyz := func() (int, string) {
		resp, err := http.Get("http://" + daemon.addr + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	require.Eventually(t, func() bool { code, _ := readyz(); return code == http.StatusOK }, 30*time.Second, 20*time.Millisecond, daemon.log())

	res := runCLI(t, b.cliEnv, "", "migrate", "down", "--yes")
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stderr, "WARNING: daemons are working on schema "+b.store.Schema()+": 1 outboxd daemon(s) connected")
	require.Contains(t, res.stderr, "Stop them first")

	// The next probe finds it out.
	code, body := readyz()
	require.Equal(t, http.StatusServiceUnavailable, code, body)
	var answer map[string]string
	require.NoError(t, json.Unmarshal([]byte(body), &answer))
	require.Equal(t, "unavailable", answer["status"])
	require.Regexp(t, `^schema \S+ is at outboxd \d+ and River \d+, but this outboxd needs outboxd \d+ and River \d+: it was rolled back; run `+"`outboxd migrate up`$", answer["error"])

	res = runCLI(t, b.cliEnv, "", "migrate", "up")
	require.Equal(t, 0, res.code, res.stderr)
	code, body = readyz()
	require.Equal(t, http.StatusOK, code, body)
	// The daemon's output reaches us through a pipe, a moment later.
	require.Eventually(t, func() bool {
		log := daemon.log()
		return strings.Contains(log, `level=ERROR msg="not ready"`) && strings.Contains(log, "ready again")
	}, 10*time.Second, 20*time.Millisecond, daemon.log())
}
