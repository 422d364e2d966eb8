package examples_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/jobs"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/outboxtest"
	"github.com/outboxd/outboxd/outbox/signing"
)

// receiverProcess is one example receiver, running, with what it has printed.
type receiverProcess struct {
	url string

	mu      sync.Mutex
	lines   []string
	changed chan struct{}
	stderr  bytes.Buffer
}

// command returns how to run an example, or fails (under CI=true) or skips the
// test when its language is not installed here.
func command(t *testing.T, example string) *exec.Cmd {
	t.Helper()
	need := func(program string) string {
		path, err := exec.LookPath(program)
		if err == nil {
			return path
		}
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed: the %s example cannot be tested, and CI must test it", program, example)
		}
		t.Skipf("%s is not installed, so the %s example is not tested here (under CI=true this fails)", program, example)
		return ""
	}
	switch example {
	case "go":
		binary := filepath.Join(t.TempDir(), "receiver-go")
		build := exec.Command(need("go"), "build", "-o", binary, "./receiver-go")
		out, err := build.CombinedOutput()
		require.NoError(t, err, "build the Go receiver: %s", out)
		return exec.Command(binary)
	case "python":
		return exec.Command(need("python3"), "receiver-python/receiver.py")
	case "node":
		return exec.Command(need("node"), "receiver-node/receiver.js")
	}
	t.Fatalf("no example %q", example)
	return nil
}

func startReceiver(t *testing.T, example string, secret signing.Secret) *receiverProcess {
	t.Helper()
	cmd := command(t, example)
	cmd.Env = append(os.Environ(), "WEBHOOK_SECRET="+secret.String(), "PORT=0", "HOST=127.0.0.1")
	rcv := &receiverProcess{changed: make(chan struct{}, 1)}
	cmd.Stderr = &rcv.stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() {
		defer close(done)
		scanner := bufio.NewScanner(stdout)
		for scanner.Scan() {
			rcv.mu.Lock()
			rcv.lines = append(rcv.lines, scanner.Text())
			rcv.mu.Unlock()
			select {
			case rcv.changed <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s receiver printed:\n%s\nstderr:\n%s", example, strings.Join(rcv.output(), "\n"), rcv.stderr.String())
		}
	})
	listening := regexp.MustCompile(`^listening on (http://127\.0\.0\.1:\d+)$`)
	line := rcv.waitFor(t, "the receiver to listen", func(line string) bool { return listening.MatchString(line) })
	rcv.url = listening.FindStringSubmatch(line)[1] + "/webhooks"
	return rcv
}

func (r *receiverProcess) output() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...)
}

// waitFor waits until a printed line matches and returns it.
func (r *receiverProcess) waitFor(t *testing.T, what string, match func(string) bool) string {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		for _, line := range r.output() {
			if match(line) {
				return line
			}
		}
		select {
		case <-r.changed:
		case <-deadline:
			t.Fatalf("timed out waiting for %s; printed so far:\n%s", what, strings.Join(r.output(), "\n"))
		}
	}
}

func (r *receiverProcess) count(line string) int {
	n := 0
	for _, l := range r.output() {
		if l == line {
			n++
		}
	}
	return n
}

// TestReceivers runs each example receiver against a real daemon: it must accept
// signed deliveries and do their work once, refuse a wrong signature and a stale
// timestamp, and acknowledge a redelivery without doing the work again.
func TestReceivers(t *testing.T) {
	t.Parallel()

	for _, example := range []string{"go", "python", "node"} {
		t.Run(example, func(t *testing.T) {
			t.Parallel()
			testReceiver(t, example)
		})
	}
}

func testReceiver(t *testing.T, example string) {
	ctx := context.Background()
	secret, err := signing.GenerateSecret()
	require.NoError(t, err)
	rcv := startReceiver(t, example, secret)

	store := outboxtest.Store(t)
	good, err := store.SubscriptionCreate(ctx, &outbox.SubscriptionCreateParams{URL: rcv.url, EventTypes: []string{"agent.step.*"}, Secret: secret})
	require.NoError(t, err)
	// Another subscription to the same receiver, whose secret the receiver does not know.
	wrong, err := store.SubscriptionCreate(ctx, &outbox.SubscriptionCreateParams{URL: rcv.url, EventTypes: []string{"agent.run.*"},
		RetrySchedule: outbox.RetrySchedule{time.Hour}})
	require.NoError(t, err)

	daemon, err := jobs.NewDaemon(outboxtest.NewPool(t, 8), &jobs.Config{
		Store: store, Guard: outboxtest.LoopbackGuard(),
		Relay: jobs.RelayConfig{PollInterval: 20 * time.Millisecond}, FetchPollInterval: 50 * time.Millisecond,
		DeliveryWorkers: 4,
	})
	require.NoError(t, err)
	require.NoError(t, daemon.Start(ctx))
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		require.NoError(t, daemon.Stop(stopCtx))
	})

	first := outboxtest.Event(ctx, t, store, &outboxtest.EventOpts{Type: "agent.step.completed", AgentID: "agent-1"})
	second := outboxtest.Event(ctx, t, store, &outboxtest.EventOpts{Type: "agent.step.started", AgentID: "agent-1"})
	forged := outboxtest.Event(ctx, t, store, &outboxtest.EventOpts{Type: "agent.run.completed", AgentID: "agent-1"})

	// Good signatures: accepted, answered, and the work done afterwards.
	for _, e := range []*outbox.Event{first, second} {
		rcv.waitFor(t, "the work on "+e.ID, func(line string) bool { return line == "processed "+e.ID+" "+e.Type })
		require.Equal(t, 1, rcv.count("accepted "+e.ID+" "+e.Type))
	}
	delivered := func(e *outbox.Event, sub string) *outbox.Delivery {
		t.Helper()
		var d *outbox.Delivery
		require.Eventually(t, func() bool {
			list, err := store.DeliveryList(ctx, &outbox.DeliveryListParams{EventID: e.ID, SubscriptionID: sub})
			if err != nil || len(list) != 1 {
				return false
			}
			d = list[0]
			return d.State == outbox.DeliveryDelivered
		}, 30*time.Second, 20*time.Millisecond, "delivery of %s", e.ID)
		return d
	}
	d := delivered(first, good.ID)
	require.Len(t, d.Attempts, 1)
	require.Equal(t, http.StatusNoContent, d.Attempts[0].StatusCode)
	delivered(second, good.ID)

	// A signature by another secret: refused with 401, so outboxd keeps it to retry.
	rcv.waitFor(t, "the wrong signature to be rejected", func(line string) bool {
		return line == "rejected: no signature matches" ||
			strings.HasPrefix(line, "rejected: unable to verify payload, err: no matching signature")
	})
	require.Eventually(t, func() bool {
		list, err := store.DeliveryList(ctx, &outbox.DeliveryListParams{EventID: forged.ID, SubscriptionID: wrong.ID})
		return err == nil && len(list) == 1 && len(list[0].Attempts) == 1 && list[0].Attempts[0].StatusCode == http.StatusUnauthorized &&
			list[0].State == outbox.DeliveryRetrying
	}, 30*time.Second, 20*time.Millisecond)
	require.Zero(t, rcv.count("accepted "+forged.ID+" "+forged.Type))

	// A redelivery (same webhook-id): acknowledged, the work not done again.
	_, err = daemon.Operations().DeliveryRetry(ctx, d.ID)
	require.NoError(t, err)
	rcv.waitFor(t, "the redelivery", func(line string) bool { return line == "duplicate "+first.ID })
	require.Eventually(t, func() bool {
		got, err := store.DeliveryGet(ctx, d.ID)
		return err == nil && got.State == outbox.DeliveryDelivered && len(got.Attempts) == 2
	}, 30*time.Second, 20*time.Millisecond)
	got, err := store.DeliveryGet(ctx, d.ID)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, got.Attempts[1].StatusCode, "a duplicate is acknowledged")
	require.Equal(t, 1, rcv.count("processed "+first.ID+" "+first.Type), "the work is done once")
	require.Equal(t, 1, rcv.count("accepted "+first.ID+" "+first.Type))

	// A correctly signed request, replayed 10 minutes late: refused.
	post := func(id string, at time.Time, body []byte, headers bool) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, rcv.url, bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		if headers {
			signing.SetHeaders(req.Header, id, at, body, secret)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	body := []byte(fmt.Sprintf(`{"id":"evt_replayed","type":"agent.step.completed","timestamp":%q,"organization_id":null,"agent_id":null,"data":{}}`,
		time.Now().UTC().Format(time.RFC3339Nano)))
	require.Equal(t, http.StatusUnauthorized, post("evt_replayed", time.Now().Add(-10*time.Minute), body, true))
	require.Equal(t, http.StatusUnauthorized, post("evt_replayed", time.Now().Add(10*time.Minute), body, true))
	require.Equal(t, http.StatusBadRequest, post("evt_replayed", time.Now(), body, false), "no signature headers")
	require.Equal(t, http.StatusNoContent, post("evt_replayed", time.Now(), body, true), "the same request, on time, is fine")
	rcv.waitFor(t, "the work on the on-time request", func(line string) bool { return line == "processed evt_replayed agent.step.completed" })
	require.Equal(t, 2, rcv.count("accepted "+first.ID+" "+first.Type)+rcv.count("accepted evt_replayed agent.step.completed"))
}
