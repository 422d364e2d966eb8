package outboxtest

import (
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox/signing"
)

// OrderedReceiver is a real HTTP receiver for ordered delivery tests. It fails a
// share of requests at random (with a fixed seed) and checks, per agent, that
// every request is for the next event not yet accepted or repeats one already
// accepted (at-least-once), never for one further on, and that no two requests
// of one agent are in flight at once.
type OrderedReceiver struct {
	Server *httptest.Server

	mu        sync.Mutex
	random    *rand.Rand
	failShare float64
	requests  int
	position  map[string]int      // event id -> index in its agent's publish order
	agentOf   map[string]string   // event id -> agent
	published map[string][]string // agent -> event ids in publish order
	accepted  map[string][]string // agent -> accepted event ids, in order of acceptance
	early     []string            // events requested before the one ahead was accepted
	repeats   []string            // events accepted again after they were accepted
	inFlight  map[string]int      // agent -> requests being answered
	overlaps  []string            // events requested while another of their agent's was in flight
	hold      chan heldRequest    // armed by HoldNext: the next request is held until released
	changed   chan struct{}
}

// NewOrderedReceiver starts a receiver that answers 503 to failShare of requests.
func NewOrderedReceiver(tb testing.TB, failShare float64) *OrderedReceiver {
	tb.Helper()
	o := &OrderedReceiver{
		random: rand.New(rand.NewPCG(1, 2)), failShare: failShare, //nolint:gosec // test randomness
		position: map[string]int{}, agentOf: map[string]string{},
		published: map[string][]string{}, accepted: map[string][]string{}, inFlight: map[string]int{},
		changed: make(chan struct{}, 1), hold: make(chan heldRequest, 1),
	}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(signing.HeaderID)
		o.mu.Lock()
		agent := o.agentOf[id]
		if o.inFlight[agent] > 0 {
			o.overlaps = append(o.overlaps, id)
		}
		o.inFlight[agent]++
		o.mu.Unlock()
		select {
		case held := <-o.hold:
			held.id <- id
			<-held.release
		default:
			time.Sleep(time.Millisecond) // a request that overlaps this one has time to arrive
		}
		o.mu.Lock()
		defer o.mu.Unlock()
		o.inFlight[agent]--
		o.requests++
		pos := o.position[id]
		done := o.accepted[agent]
		if pos > len(done) {
			o.early = append(o.early, id)
		}
		if o.random.Float64() < o.failShare {
			w.WriteHeader(http.StatusServiceUnavailable) // refused: the daemon tries again, rightly
			return
		}
		if pos < len(done) {
			o.repeats = append(o.repeats, id) // acknowledged a second time
		}
		if pos == len(done) {
			o.accepted[agent] = append(done, id)
			select {
			case o.changed <- struct{}{}:
			default:
			}
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	tb.Cleanup(o.Server.Close)
	return o
}

type heldRequest struct {
	id      chan string
	release chan struct{}
}

// HoldNext holds the next request until release is called; held receives its
// event id when it arrives.
func (o *OrderedReceiver) HoldNext() (held <-chan string, release func()) {
	h := heldRequest{id: make(chan string, 1), release: make(chan struct{})}
	o.hold <- h
	return h.id, func() { close(h.release) }
}

// Expect records that eventID is the next event published for agent. Call it in
// publish order, before the event can be delivered.
func (o *OrderedReceiver) Expect(agent, eventID string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.position[eventID] = len(o.published[agent])
	o.agentOf[eventID] = agent
	o.published[agent] = append(o.published[agent], eventID)
}

// Accepted is how many of agent's events have been accepted.
func (o *OrderedReceiver) Accepted(agent string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.accepted[agent])
}

// WaitAccepted waits until agent has n events accepted.
func (o *OrderedReceiver) WaitAccepted(tb testing.TB, agent string, n int, timeout time.Duration) {
	tb.Helper()
	deadline := time.After(timeout)
	for o.Accepted(agent) < n {
		select {
		case <-o.changed:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			tb.Fatalf("agent %s: %d of %d events accepted in %s", agent, o.Accepted(agent), n, timeout)
		}
	}
}

// RequireInOrder checks that every agent's events were accepted exactly in
// publish order, none was requested before the one ahead of it was accepted, no
// two of one agent were in flight at once, and at most maxRepeats requests for an
// event already accepted were accepted again (a daemon killed after the receiver
// answered, say; a repeat the receiver refuses is retried, rightly). It returns
// the number of requests.
func (o *OrderedReceiver) RequireInOrder(tb testing.TB, maxRepeats int) int {
	tb.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	require.Empty(tb, o.early, "events sent before the one ahead of them was accepted")
	require.Empty(tb, o.overlaps, "events sent while another of their agent's was in flight")
	require.LessOrEqual(tb, len(o.repeats), maxRepeats, "events sent again after they were accepted: %v", o.repeats)
	for agent, want := range o.published {
		require.Equal(tb, want, o.accepted[agent], "agent %s", agent)
	}
	return o.requests
}
