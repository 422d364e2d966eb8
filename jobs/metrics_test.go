package jobs

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox/outboxtest"
)

// gauges scrapes a collector and returns each sample by name and label values.
func gauges(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	families, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, family := range families {
		for _, m := range family.GetMetric() {
			key := family.GetName()
			for _, label := range m.GetLabel() {
				key += "/" + label.GetValue()
			}
			out[key] = gaugeValue(m)
		}
	}
	return out
}

func gaugeValue(m *dto.Metric) float64 { return m.GetGauge().GetValue() }

func TestBacklogCollectorReportsHealth(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := outboxtest.Store(t)

	healthy := outboxtest.Subscription(ctx, t, store, nil)
	disabled := outboxtest.Subscription(ctx, t, store, nil)
	_, err := store.SubscriptionDisable(ctx, disabled.ID, "test")
	require.NoError(t, err)
	_, err = store.SubscriptionSecretRotate(ctx, healthy.ID, 0) // the old secret expires in 24 h
	require.NoError(t, err)
	outboxtest.Event(ctx, t, store, nil)
	outboxtest.Event(ctx, t, store, nil)

	got := gauges(t, NewBacklogCollector(store))
	require.Equal(t, 2.0, got["outboxd_undispatched_events"])
	require.Positive(t, got["outboxd_oldest_undispatched_event_age_seconds"])
	require.Equal(t, 1.0, got["outboxd_subscriptions_disabled"])
	require.Equal(t, 1.0, got["outboxd_secrets_expiring_soon"])

	// Jobs appear by queue and state once the relay claims the events: one
	// delivery per event for the enabled subscription.
	pool := outboxtest.NewPool(t, 4)
	daemon, err := NewDaemon(pool, &Config{Store: store, Guard: outboxtest.LoopbackGuard()})
	require.NoError(t, err)
	claimed, err := daemon.relay.claim(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, claimed)
	got = gauges(t, NewBacklogCollector(store))
	require.Equal(t, 0.0, got["outboxd_undispatched_events"])
	require.Equal(t, 2.0, got["outboxd_jobs/"+QueueDelivery+"/available"])
	require.Zero(t, got["outboxd_jobs/"+QueueFanout+"/available"])

}
