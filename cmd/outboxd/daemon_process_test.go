package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/outboxtest"
	"github.com/outboxd/outboxd/outbox/secretbox"
	"github.com/outboxd/outboxd/outbox/signing"
)

// slowReceiver holds each request for delay, so deliveries are in flight when a
// test stops or kills the daemon. It counts a webhook-id as received only if the
// daemon is still connected when the answer goes out: a request cut off by a
// killed daemon was never acknowledged, so outboxd must send it again.
type slowReceiver struct {
	server *httptest.Server
	delay  time.Duration

	mu       sync.Mutex
	arrived  int            // requests that reached the handler
	received map[string]int // answered requests by webhook-id
	changed  chan struct{}
}

func (r *slowReceiver) notify() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func newSlowReceiver(t *testing.T, delay time.Duration) *slowReceiver {
	t.Helper()
	rcv := &slowReceiver{delay: delay, received: map[string]int{}, changed: make(chan struct{}, 1)}
	rcv.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Reading the body to the end also lets the server notice, and cancel
		// r.Context(), when the daemon's connection goes away.
		_, _ = io.Copy(io.Discard, r.Body)
		rcv.mu.Lock()
		rcv.arrived++
		rcv.mu.Unlock()
		rcv.notify()
		select {
		case <-time.After(rcv.delay):
		case <-r.Context().Done():
			return // the daemon went away
		}
		w.WriteHeader(http.StatusNoContent)
		rcv.mu.Lock()
		rcv.received[r.Header.Get(signing.HeaderID)]++
		rcv.mu.Unlock()
		rcv.notify()
	}))
	t.Cleanup(rcv.server.Close)
	return rcv
}

// waitFor waits until cond holds, woken by each request.
func (r *slowReceiver) waitFor(t *testing.T, what string, cond func(arrived int, received map[string]int) bool) {
	t.Helper()
	deadline := time.After(90 * time.Second)
	for {
		r.mu.Lock()
		ok := cond(r.arrived, r.received)
		n := len(r.received)
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.changed:
		case <-deadline:
			t.Fatalf("timed out waiting for %s (%d distinct events received)", what, n)
		}
	}
}

func (r *slowReceiver) snapshot() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	copied := make(map[string]int, len(r.received))
	for id, n := range r.received {
		copied[id] = n
	}
	return copied
}

type processBundle struct {
	ctx      context.Context
	store    *outbox.Store
	receiver *slowReceiver
	env      []string          // for daemon processes
	cliEnv   map[string]string // for in-process command lines (runCLI)
}

// setupProcess makes a bundle whose one subscription goes to a slowReceiver.
func setupProcess(t *testing.T, delay time.Duration) *processBundle {
	t.Helper()
	b := newProcessBundle(t)
	b.receiver = newSlowReceiver(t, delay)
	outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{URL: b.receiver.server.URL})
	return b
}

// newProcessBundle makes a schema and the environment for daemon processes on it.
func newProcessBundle(t *testing.T) *processBundle {
	t.Helper()
	ctx := context.Background()
	rawKey := bytes.Repeat([]byte{7}, secretbox.KeySize)
	key, err := secretbox.NewKey(rawKey)
	require.NoError(t, err)
	store, err := outbox.NewStore(outboxtest.Pool(t), &outbox.StoreConfig{
		Schema:  outboxtest.Schema(t),
		Keyring: secretbox.NewKeyring(key),
		Guard:   outboxtest.LoopbackGuard(),
	})
	require.NoError(t, err)
	return &processBundle{
		ctx:   ctx,
		store: store,
		cliEnv: map[string]string{
			"DATABASE_URL":           outboxtest.DatabaseURL(),
			"OUTBOXD_SCHEMA":         store.Schema(),
			"OUTBOXD_ENCRYPTION_KEY": base64.StdEncoding.EncodeToString(rawKey),
		},
		env: append(os.Environ(),
			runAsOutboxd+"=1",
			"DATABASE_URL="+smallPool(outboxtest.DatabaseURL()),
			"OUTBOXD_SCHEMA="+store.Schema(),
			"OUTBOXD_ENCRYPTION_KEY="+base64.StdEncoding.EncodeToString(rawKey),
		),
	}
}

// smallPool caps a daemon process's pool, so the tests' daemons running side by
// side stay well under the server's max_connections.
func smallPool(databaseURL string) string {
	if strings.Contains(databaseURL, "?") {
		return databaseURL + "&pool_max_conns=8"
	}
	return databaseURL + "?pool_max_conns=8"
}

// daemonProcess is `outboxd run` in a child process.
type daemonProcess struct {
	addr   string // its --http-addr
	cmd    *exec.Cmd
	output *syncWriter
	buf    *bytes.Buffer
	exited chan error
}

// startDaemon starts `outboxd run` with fast test settings, plus extra flags.
func (b *processBundle) startDaemon(t *testing.T, extra ...string) *daemonProcess {
	t.Helper()
	return b.startDaemonEnv(t, nil, extra...)
}

// startDaemonEnv is startDaemon with environment variables (KEY=value) that
// replace the bundle's.
func (b *processBundle) startDaemonEnv(t *testing.T, env []string, extra ...string) *daemonProcess {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command(exe, append([]string{"run",
		"--http-addr", addr,
		"--allow-private-targets", "127.0.0.0/8",
		"--delivery-workers", "20",
		"--poll-interval", "20ms",
		"--fetch-poll-interval", "50ms",
		"--request-timeout", "2s",
		"--rescue-stuck-after", "13s",
		"--shutdown-timeout", "20s",
	}, extra...)...)
	cmd.Env = append(append([]string{}, b.env...), env...) // the last of a key wins
	buf := &bytes.Buffer{}
	out := &syncWriter{w: buf}
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	p := &daemonProcess{addr: addr, cmd: cmd, output: out, buf: buf, exited: make(chan error, 1)}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
	})
	return p
}

func (p *daemonProcess) log() string {
	p.output.mu.Lock()
	defer p.output.mu.Unlock()
	return p.buf.String()
}

func (p *daemonProcess) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-p.exited:
		p.exited <- err // keep it for Cleanup
		return err
	case <-time.After(60 * time.Second):
		t.Fatalf("daemon did not exit; its log:\n%s", p.log())
		return nil
	}
}

func (b *processBundle) publish(t *testing.T, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		ids[i] = outboxtest.Event(b.ctx, t, b.store, &outboxtest.EventOpts{Payload: map[string]int{"i": i}}).ID
	}
	return ids
}

func TestKilledDaemonLosesNothing(t *testing.T) {
	t.Parallel()

	b := setupProcess(t, 150*time.Millisecond)
	first := b.startDaemon(t)
	published := b.publish(t, 200)

	// Kill it mid-flight: some delivered, some in the receiver's hands (waited for,
	// so the kill is sure to cut deliveries off), the rest queued. What a receiver
	// does with a request after the kill no longer matters: the dead daemon cannot
	// record the answer, so those deliveries must be rescued and sent again.
	var cutOff int
	b.receiver.waitFor(t, "the first deliveries, with more in flight", func(arrived int, received map[string]int) bool {
		answered := 0
		for _, n := range received {
			answered += n
		}
		cutOff = arrived - answered
		return len(received) >= 40 && cutOff > 0
	})
	require.NoError(t, first.cmd.Process.Signal(syscall.SIGKILL))
	require.Error(t, first.wait(t), "killed, not exited")

	// Published while no daemon runs.
	published = append(published, b.publish(t, 50)...)

	second := b.startDaemon(t)
	b.receiver.waitFor(t, "every event after the restart", func(_ int, received map[string]int) bool {
		for _, id := range published {
			if received[id] == 0 {
				return false
			}
		}
		return true
	})
	received := b.receiver.snapshot()
	duplicates := 0
	for _, n := range received {
		duplicates += n - 1
	}
	t.Logf("%d events delivered after a SIGKILL that cut off %d requests; %d duplicates (at-least-once)", len(published), cutOff, duplicates)
	require.Len(t, received, len(published), "nothing but published events was sent")

	// The records agree: the cut-off deliveries were rescued and sent again.
	deliveries, err := b.store.DeliveryList(b.ctx, &outbox.DeliveryListParams{Limit: 1000})
	require.NoError(t, err)
	require.Len(t, deliveries, len(published))
	retried := 0
	for _, d := range deliveries {
		if d.State != outbox.DeliveryDelivered {
			// The completion of the last answers may still be on its way to the database.
			require.Eventually(t, func() bool {
				got, err := b.store.DeliveryGet(b.ctx, d.ID)
				return err == nil && got.State == outbox.DeliveryDelivered
			}, 10*time.Second, 50*time.Millisecond, "delivery %d is %s", d.ID, d.State)
		}
		if d.Attempt > 1 {
			retried++
		}
	}
	require.GreaterOrEqual(t, retried, cutOff, "every cut-off delivery was attempted again")

	require.NoError(t, second.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, second.wait(t), second.log())
}

func TestGracefulStopFinishesInFlightDeliveries(t *testing.T) {
	t.Parallel()

	b := setupProcess(t, 500*time.Millisecond)
	daemon := b.startDaemon(t)
	published := b.publish(t, 10)
	b.receiver.waitFor(t, "deliveries in flight", func(arrived int, _ map[string]int) bool { return arrived == len(published) })

	// Every delivery is in the receiver's hands for the next 500 ms. Meanwhile the
	// daemon reports itself ready, and its metrics show the work.
	resp, err := http.Get("http://" + daemon.addr + "/readyz")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.JSONEq(t, `{"status":"ready"}`, string(body))
	resp, err = http.Get("http://" + daemon.addr + "/metrics")
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(body), "outboxd_deliveries_created_total 10\n")
	require.Contains(t, string(body), "outboxd_undispatched_events 0\n")
	require.Contains(t, string(body), "outboxd_oldest_undispatched_event_age_seconds 0\n")

	require.NoError(t, daemon.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, daemon.wait(t), daemon.log())
	require.Contains(t, daemon.log(), "stopping: finishing in-flight deliveries")
	require.Contains(t, daemon.log(), "outboxd stopped")

	// They finished and were recorded; none is left running or queued to run again.
	require.Len(t, b.receiver.snapshot(), len(published))
	deliveries, err := b.store.DeliveryList(b.ctx, nil)
	require.NoError(t, err)
	require.Len(t, deliveries, len(published))
	for _, d := range deliveries {
		require.Equal(t, outbox.DeliveryDelivered, d.State, "delivery %d", d.ID)
		require.Equal(t, 1, d.Attempt)
	}
}

func TestRunRefusesAnOutdatedSchema(t *testing.T) {
	t.Parallel()

	b := setupCLI(t)
	res := b.run(t, "", "migrate", "down", "--yes")
	require.Equal(t, 0, res.code, res.stderr)
	res = b.run(t, "", "run", "--http-addr", "127.0.0.1:0")
	require.Equal(t, 1, res.code)
	require.Regexp(t, `outboxd (\d+)/\d+: run `+"`outboxd migrate up` \\(or pass --migrate\\)", res.stderr)

	delete(b.env, "OUTBOXD_ENCRYPTION_KEY")
	res = b.run(t, "", "run", "--http-addr", "127.0.0.1:0")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "cannot sign deliveries: no encryption key")
}

// TestSurvivorsTakeOverAKilledDaemonsDeliveries: three daemons share the work;
// one is killed with deliveries in flight. The others send those again within
// seconds of its heartbeat stopping, long before River's rescuer (100 s here)
// would, and nothing is lost.
func TestSurvivorsTakeOverAKilledDaemonsDeliveries(t *testing.T) {
	t.Parallel()

	b := newProcessBundle(t)
	// Every request is held 300 ms, so each daemon has deliveries in flight.
	b.receiver = newSlowReceiver(t, 300*time.Millisecond)
	outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{URL: b.receiver.server.URL})
	rescue := []string{"--rescue-stuck-after", "100s", "--take-over-after", "6s"}
	daemons := []*daemonProcess{b.startDaemon(t, rescue...), b.startDaemon(t, rescue...), b.startDaemon(t, rescue...)}
	published := b.publish(t, 300)

	var cutOff int
	b.receiver.waitFor(t, "deliveries under way on every daemon", func(arrived int, received map[string]int) bool {
		answered := 0
		for _, n := range received {
			answered += n
		}
		cutOff = arrived - answered
		return len(received) >= 30 && cutOff >= 10
	})
	killed := time.Now()
	require.NoError(t, daemons[0].cmd.Process.Signal(syscall.SIGKILL))
	require.Error(t, daemons[0].wait(t), "killed, not exited")

	b.receiver.waitFor(t, "every event", func(_ int, received map[string]int) bool {
		for _, id := range published {
			if received[id] == 0 {
				return false
			}
		}
		return true
	})
	took := time.Since(killed)
	t.Logf("all %d events delivered %s after a SIGKILL that cut off %d requests", len(published), took.Round(time.Millisecond), cutOff)
	require.Less(t, took, 20*time.Second, "taken over well before River's rescuer (100 s)")
	require.Len(t, b.receiver.snapshot(), len(published), "nothing but published events was sent")

	// The killed daemon's deliveries were taken over, not rescued by River.
	var takenOver int
	require.NoError(t, outboxtest.Pool(t).QueryRow(b.ctx, "SELECT count(*) FROM "+b.store.Schema()+
		".river_job WHERE metadata ? 'outboxd:taken_over_from'").Scan(&takenOver))
	require.Positive(t, takenOver)
	daemonsSeen, err := b.store.DaemonList(b.ctx)
	require.NoError(t, err)
	require.Len(t, daemonsSeen, 3)
	require.Contains(t, daemonsSeen[2].StopReason, "no heartbeat since", "the killed one, listed last")

	// The survivors say what they did.
	require.Eventually(t, func() bool {
		return strings.Contains(daemons[1].log()+daemons[2].log(), "daemons stopped answering; their running jobs are due again")
	}, 10*time.Second, 50*time.Millisecond)
	for _, d := range daemons[1:] {
		require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
		require.NoError(t, d.wait(t), d.log())
	}
}
