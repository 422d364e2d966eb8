package jobs

import (
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/outboxtest"
)

func TestDeadDaemonsJobsAreTakenOver(t *testing.T) {
	t.Parallel()
	rcv := newTestReceiver(t, nil)
	b := setupDaemon(t, func(c *Config) {
		c.HeartbeatInterval = 50 * time.Millisecond
		c.TakeOverAfter = time.Second
		c.Relay.PollInterval = time.Hour // the test makes the deliveries
	})
	sub := outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{URL: rcv.server.URL})
	schema := b.store.Schema()

	// A daemon that was running two deliveries (one with attempts left, one on
	// its last), and another daemon running one.
	running := func(daemon string, attempt, maxAttempts int) int64 {
		e := outboxtest.Event(b.ctx, t, b.store, nil)
		// Scheduled for later, so this daemon does not fetch it before it is made running.
		job, err := b.daemon.Client().Insert(b.ctx, DeliveryArgs{EventID: e.ID, SubscriptionID: sub.ID}, &river.InsertOpts{ScheduledAt: time.Now().Add(time.Hour)})
		require.NoError(t, err)
		_, err = b.pool.Exec(b.ctx, "UPDATE "+schema+`.river_job SET state = 'running', attempt = $2, max_attempts = $3,
			attempted_at = now(), attempted_by = ARRAY['earlier', $4] WHERE id = $1`, job.Job.ID, attempt, maxAttempts, daemon)
		require.NoError(t, err)
		return job.Job.ID
	}
	withAttemptsLeft := running("ghost", 1, 8)
	onLastAttempt := running("ghost", 3, 3)
	ofTheLiving := running("alive", 1, 8)

	// The ghost beat its last heartbeat a minute ago; the other daemon just now.
	for _, d := range []struct {
		id  string
		age time.Duration
	}{{"ghost", time.Minute}, {"alive", 0}} {
		require.NoError(t, b.store.DaemonRegister(b.ctx, &outbox.Daemon{ID: d.id}))
		_, err := b.pool.Exec(b.ctx, "UPDATE "+schema+".daemons SET heartbeat_at = now() - make_interval(secs => $2) WHERE id = $1", d.id, d.age.Seconds())
		require.NoError(t, err)
	}
	// Within a beat or two, the ghost is presumed dead and its jobs put back.
	require.Eventually(t, func() bool {
		daemons, err := b.store.DaemonList(b.ctx)
		require.NoError(t, err)
		for _, d := range daemons {
			if d.ID == "ghost" {
				return d.StoppedAt != nil
			}
		}
		return false
	}, 20*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { // counted just after the take-over commits
		var taken dto.Metric
		require.NoError(t, b.daemon.config.Metrics.JobsTakenOver.Write(&taken))
		return taken.GetCounter().GetValue() == 2
	}, 20*time.Second, 10*time.Millisecond, "the two jobs of the ghost are counted")

	delivered := rcv.next(t)
	require.NotEmpty(t, delivered.header.Get("webhook-id"))
	var got *outbox.Delivery
	require.Eventually(t, func() bool {
		var err error
		got, err = b.store.DeliveryGet(b.ctx, withAttemptsLeft)
		require.NoError(t, err)
		return got.State == outbox.DeliveryDelivered
	}, 20*time.Second, 10*time.Millisecond, "taken over and delivered")
	require.Equal(t, 2, got.Attempt)
	got, err := b.store.DeliveryGet(b.ctx, onLastAttempt)
	require.NoError(t, err)
	require.Equal(t, outbox.DeliveryDead, got.State, "no attempt left: dead, with the reason")
	require.Contains(t, got.LastError, "daemon ghost stopped")
	got, err = b.store.DeliveryGet(b.ctx, ofTheLiving)
	require.NoError(t, err)
	require.Equal(t, outbox.DeliveryDelivering, got.State, "a live daemon's job is its own")

	daemons, err := b.store.DaemonList(b.ctx)
	require.NoError(t, err)
	states := map[string]string{}
	for _, d := range daemons {
		states[d.ID] = d.StopReason
	}
	require.Empty(t, states[b.daemon.ID()], "this daemon is alive")
	require.Empty(t, states["alive"])
	require.Contains(t, states["ghost"], "no heartbeat since")
}

func TestPresumedDeadDaemonRegistersAgain(t *testing.T) {
	t.Parallel()
	b := setupDaemon(t, func(c *Config) {
		c.HeartbeatInterval = 50 * time.Millisecond
		c.TakeOverAfter = time.Second
	})
	_, err := b.pool.Exec(b.ctx, "UPDATE "+b.store.Schema()+".daemons SET stopped_at = now(), stop_reason = 'test' WHERE id = $1", b.daemon.ID())
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		daemons, err := b.store.DaemonList(b.ctx)
		require.NoError(t, err)
		require.Len(t, daemons, 1)
		return daemons[0].StoppedAt == nil
	}, 20*time.Second, 10*time.Millisecond, "registered again at its next beat")
}
