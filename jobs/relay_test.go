package jobs

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox/outboxtest"
)

// A busy relay (its last claim found events) looks again after its active poll
// interval, or sooner when a producer says it committed: then at its woken poll
// interval. Both waits are long here but for the woken one, so only a wake-up
// can bring the claims in time.
func TestWokenRelayClaimsSooner(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := outboxtest.Store(t)
	daemon := startRelayDaemon(t, &Config{
		Store: store,
		Guard: outboxtest.LoopbackGuard(),
		Relay: RelayConfig{PollInterval: time.Hour, ActivePollInterval: time.Hour, WokenPollInterval: 10 * time.Millisecond},
	})
	claimed := &daemon.relay.testSignals.claimed

	require.Zero(t, claimed.waitOrTimeout(t), "the first pass finds nothing, then waits an hour")
	outboxtest.Event(ctx, t, store, nil)
	daemon.relay.Wake()
	require.Equal(t, 1, claimed.waitOrTimeout(t), "woken while idle: at once")
	for range 3 {
		outboxtest.Event(ctx, t, store, nil)
		daemon.relay.Wake()
		require.Equal(t, 1, claimed.waitOrTimeout(t), "woken while busy: after the woken poll interval")
	}
}

// A relay that found events moments ago keeps looking every active poll
// interval, even after a claim that found none: light traffic (an event every
// few tens of milliseconds) waits that long at most, not a whole poll interval.
// Once events stop for ActiveFor, it slows to its poll interval.
func TestRelayKeepsLookingWhileEventsFlow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := outboxtest.Store(t)
	daemon := startRelayDaemon(t, &Config{
		Store: store,
		Guard: outboxtest.LoopbackGuard(),
		Relay: RelayConfig{PollInterval: time.Hour, ActivePollInterval: 5 * time.Millisecond, ActiveFor: time.Hour},
	})
	claimed := &daemon.relay.testSignals.claimed

	require.Zero(t, claimed.waitOrTimeout(t), "the first pass finds nothing, then waits an hour")
	outboxtest.Event(ctx, t, store, nil)
	daemon.relay.Wake()
	require.Equal(t, 1, claimed.waitOrTimeout(t))
	// No more wake-ups: the relay finds the next events by looking.
	for range 3 {
		event := outboxtest.Event(ctx, t, store, nil)
		require.Eventually(t, func() bool {
			got, err := store.EventGet(ctx, event.ID)
			require.NoError(t, err)
			return got.DispatchedAt != nil
		}, 10*time.Second, 5*time.Millisecond, "claimed without a wake-up, long before the poll interval")
	}
}

// A quiet relay (its last look found nothing) asks whether any event waits, in
// one statement, and opens a claim transaction only when one does: an idle
// daemon's polls stay cheap.
func TestQuietRelayLooksBeforeItClaims(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := outboxtest.Store(t)
	daemon := startRelayDaemon(t, &Config{
		Store: store,
		Guard: outboxtest.LoopbackGuard(),
		Relay: RelayConfig{PollInterval: 5 * time.Millisecond, ActiveFor: -1},
	})
	relay := daemon.relay

	require.Zero(t, relay.testSignals.claimed.waitOrTimeout(t), "the first pass claims and finds nothing")
	for range 3 {
		require.False(t, relay.testSignals.looked.waitOrTimeout(t), "then it only looks")
	}
	require.Empty(t, relay.testSignals.claimed.ch, "no claim transaction while nothing waits")

	event := outboxtest.Event(ctx, t, store, nil)
	for !relay.testSignals.looked.waitOrTimeout(t) {
	}
	require.Equal(t, 1, relay.testSignals.claimed.waitOrTimeout(t), "a look that finds an event claims it")
	got, err := store.EventGet(ctx, event.ID)
	require.NoError(t, err)
	require.NotNil(t, got.DispatchedAt)
}

// A relay that has found nothing for IdleAfter (or since it started) looks
// only every IdlePollInterval: each look wakes the daemon and costs a round
// trip, and an idle daemon should cost next to nothing. An event brings it back
// to PollInterval until IdleAfter has passed again.
func TestIdleRelayLooksSeldom(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := outboxtest.Store(t)
	const poll, idlePoll, idleAfter = 5 * time.Millisecond, 50 * time.Millisecond, 300 * time.Millisecond
	daemon := startRelayDaemon(t, &Config{
		Store: store,
		Guard: outboxtest.LoopbackGuard(),
		Relay: RelayConfig{PollInterval: poll, IdlePollInterval: idlePoll, IdleAfter: idleAfter, ActiveFor: -1},
	})
	waiting := &daemon.relay.testSignals.waiting

	require.Equal(t, idlePoll, waiting.waitOrTimeout(t), "nothing found since the start: idle")
	sent := time.Now()
	outboxtest.Event(ctx, t, store, nil)
	daemon.relay.Wake()
	for waiting.waitOrTimeout(t) != poll {
	}
	for range 3 {
		require.Equal(t, poll, waiting.waitOrTimeout(t), "an event came within IdleAfter: quiet, not idle")
	}
	for waiting.waitOrTimeout(t) != idlePoll {
	}
	require.GreaterOrEqual(t, time.Since(sent), idleAfter, "idle again only once IdleAfter has passed")
}

// River sends at most one insert notification per queue per FetchCooldown from
// each client, so a claim made just after another one sent none, and its
// deliveries waited for River's next fetch poll. Every claim that makes
// deliveries due announces them itself. Here River polls hourly and its
// cooldown is 3 s: the second event, claimed well within the cooldown of the
// first, is delivered in time only if its own claim announced it.
func TestClaimAnnouncesItsDeliveries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := outboxtest.Store(t)
	rcv := newTestReceiver(t, nil)
	outboxtest.Subscription(ctx, t, store, &outboxtest.SubscriptionOpts{URL: rcv.server.URL})
	daemon := startRelayDaemon(t, &Config{
		Store:             store,
		Guard:             outboxtest.LoopbackGuard(),
		Relay:             RelayConfig{PollInterval: time.Hour, ActivePollInterval: time.Hour, WokenPollInterval: time.Millisecond},
		FetchCooldown:     3 * time.Second,
		FetchPollInterval: time.Hour,
	})
	claimed := &daemon.relay.testSignals.claimed

	require.Zero(t, claimed.waitOrTimeout(t), "the first pass finds nothing")
	for range 2 {
		began := time.Now()
		outboxtest.Event(ctx, t, store, nil)
		daemon.relay.Wake()
		require.Equal(t, 1, claimed.waitOrTimeout(t))
		rcv.next(t)
		t.Logf("delivered %s after the commit", time.Since(began).Round(time.Millisecond))
	}
}

// startRelayDaemon starts a daemon with config, its relay's claimed and looked
// signals ready, and stops it when the test ends.
func startRelayDaemon(t *testing.T, config *Config) *Daemon {
	t.Helper()
	daemon, err := NewDaemon(outboxtest.NewPool(t, 8), config)
	require.NoError(t, err)
	daemon.relay.testSignals.claimed.init(t)
	daemon.relay.testSignals.looked.init(t)
	daemon.relay.testSignals.waiting.init(t)
	require.NoError(t, daemon.Start(context.Background()))
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, daemon.Stop(stopCtx))
	})
	return daemon
}
