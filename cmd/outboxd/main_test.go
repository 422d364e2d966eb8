package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox/outboxtest"
	"github.com/outboxd/outboxd/outbox/secretbox"
)

// runAsOutboxd makes the test binary act as the outboxd binary, so tests can start
// real daemon processes (and kill them) without a separate build.
const runAsOutboxd = "OUTBOXD_TEST_RUN_AS_OUTBOXD"

func TestMain(m *testing.M) {
	if os.Getenv(runAsOutboxd) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		go func() { <-ctx.Done(); stop() }()
		os.Exit(execute(ctx, osApp(), os.Args[1:]))
	}
	os.Exit(m.Run())
}

// cliResult is what one in-process command line produced.
type cliResult struct {
	code   int
	stdout string
	stderr string
}

// cliBundle runs outboxd command lines in-process against one fresh schema.
type cliBundle struct {
	schema string
	key    string // OUTBOXD_ENCRYPTION_KEY
	env    map[string]string
}

func setupCLI(t *testing.T) *cliBundle {
	t.Helper()
	raw := make([]byte, secretbox.KeySize)
	_, err := rand.Read(raw)
	require.NoError(t, err)
	key := base64.StdEncoding.EncodeToString(raw)
	schema := outboxtest.Schema(t)
	return &cliBundle{
		schema: schema,
		key:    key,
		env: map[string]string{
			"DATABASE_URL":           outboxtest.DatabaseURL(),
			"OUTBOXD_SCHEMA":         schema,
			"OUTBOXD_ENCRYPTION_KEY": key,
		},
	}
}

func (b *cliBundle) run(t *testing.T, stdin string, args ...string) cliResult {
	t.Helper()
	return runCLI(t, b.env, stdin, args...)
}

func runCLI(t *testing.T, env map[string]string, stdin string, args ...string) cliResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	a := &app{
		lookupEnv: func(name string) (string, bool) { v, ok := env[name]; return v, ok },
		stdin:     strings.NewReader(stdin),
		stdout:    &stdout,
		stderr:    &stderr,
	}
	code := execute(t.Context(), a, args)
	return cliResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// syncWriter serialises writes from a command's goroutines with the test's reads.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
