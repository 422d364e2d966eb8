package outbox_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/outboxtest"
)

func TestDeliveryControlFields(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		ctx   context.Context
		store *outbox.Store
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		return &testBundle{ctx: context.Background(), store: outboxtest.Store(t)}
	}

	t.Run("DefaultsAndRoundTrip", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		plain := outboxtest.Subscription(b.ctx, t, b.store, nil)
		require.Equal(t, outbox.OrderingNone, plain.Ordering)
		require.Equal(t, outbox.OnDeadBlock, plain.OnDead)
		require.Zero(t, plain.MaxInFlight)

		sub := outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{
			MaxInFlight: 4, Ordering: outbox.OrderingAgent, OnDead: outbox.OnDeadSkip,
		})
		got, err := b.store.SubscriptionGet(b.ctx, sub.ID)
		require.NoError(t, err)
		require.Equal(t, 4, got.MaxInFlight)
		require.Equal(t, outbox.OrderingAgent, got.Ordering)
		require.Equal(t, outbox.OnDeadSkip, got.OnDead)

		zero, none := 0, outbox.OrderingNone
		updated, err := b.store.SubscriptionUpdate(b.ctx, sub.ID, &outbox.SubscriptionUpdateParams{MaxInFlight: &zero, Ordering: &none})
		require.NoError(t, err)
		require.Zero(t, updated.MaxInFlight)
		require.Equal(t, outbox.OrderingNone, updated.Ordering)
		require.Equal(t, outbox.OnDeadSkip, updated.OnDead, "left as it was")
	})

	t.Run("BadValuesChangeNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, tc := range []struct {
			params outbox.SubscriptionCreateParams
			field  string
		}{
			{outbox.SubscriptionCreateParams{MaxInFlight: -1}, "max_in_flight"},
			{outbox.SubscriptionCreateParams{MaxInFlight: outbox.MaxInFlightMax + 1}, "max_in_flight"},
			{outbox.SubscriptionCreateParams{Ordering: "global"}, "ordering"},
			{outbox.SubscriptionCreateParams{OnDead: "retry"}, "on_dead"},
		} {
			tc.params.URL = "https://example.com/hooks"
			_, err := b.store.SubscriptionCreate(b.ctx, &tc.params)
			var verr *outbox.ValidationError
			require.True(t, errors.As(err, &verr), "%+v: %v", tc.params, err)
			require.Equal(t, tc.field, verr.Field)
		}
		subs, err := b.store.SubscriptionList(b.ctx, nil)
		require.NoError(t, err)
		require.Empty(t, subs)
	})
}

func TestOperationalEventTypesAreReserved(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := outboxtest.Store(t)

	_, err := store.Publish(ctx, &outbox.PublishParams{Type: outbox.EventSubscriptionDisabled})
	var verr *outbox.ValidationError
	require.True(t, errors.As(err, &verr), "%v", err)
	require.Equal(t, "type", verr.Field)
	require.Contains(t, verr.Message, "reserved")

	// Plain SQL gets the same answer.
	_, err = outboxtest.Pool(t).Exec(ctx, `INSERT INTO `+store.Schema()+`.events (type) VALUES ('outboxd.delivery.exhausted')`)
	require.ErrorContains(t, err, "is reserved: outboxd.* events are published by outboxd itself")

	events, err := store.EventList(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, events)
}

func TestCircuitBookkeeping(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := outboxtest.Store(t)
	sub := outboxtest.Subscription(ctx, t, store, nil)
	policy := &outbox.CircuitPolicy{Threshold: 2, BackoffMin: time.Minute, BackoffMax: 3 * time.Minute, DisableAfter: time.Hour}

	fail := func(probe bool) *outbox.FailureOutcome {
		t.Helper()
		outcome, err := store.SubscriptionFailure(ctx, sub.ID, policy, &outbox.AttemptFailure{Probe: probe, Error: "503"})
		require.NoError(t, err)
		require.False(t, outcome.Disabled)
		return outcome
	}
	wait := func(outcome *outbox.FailureOutcome) time.Duration {
		require.NotNil(t, outcome.OpenUntil)
		return time.Until(*outcome.OpenUntil).Round(time.Minute)
	}

	first := fail(false)
	require.Equal(t, 1, first.Streak)
	require.Nil(t, first.OpenUntil, "under the threshold the circuit stays closed")
	require.False(t, first.Opened)

	opened := fail(false)
	require.True(t, opened.Opened)
	require.Equal(t, 2, opened.Streak)
	require.Equal(t, time.Minute, wait(opened))

	// Attempts that were in flight when it opened fail too: they count for
	// nothing, however many there are.
	for range 10 {
		late := fail(false)
		require.False(t, late.Opened)
		require.Equal(t, 2, late.Streak)
		require.Equal(t, *opened.OpenUntil, *late.OpenUntil)
	}

	// Each failed probe doubles the wait, up to the maximum.
	var waits []time.Duration
	for range 3 {
		outcome := fail(true)
		require.False(t, outcome.Opened, "it was open already")
		waits = append(waits, wait(outcome))
	}
	require.Equal(t, []time.Duration{2 * time.Minute, 3 * time.Minute, 3 * time.Minute}, waits, "doubling, up to the maximum")
	require.Equal(t, 5, fail(false).Streak, "two to open, three probes")

	// Only one attempt gets to probe once the wait is over.
	probe, err := store.CircuitProbeTake(ctx, sub.ID, time.Minute)
	require.NoError(t, err)
	require.False(t, probe, "still open")

	recovered, err := store.SubscriptionSuccess(ctx, sub.ID)
	require.NoError(t, err)
	require.True(t, recovered)
	got, err := store.SubscriptionGet(ctx, sub.ID)
	require.NoError(t, err)
	require.Zero(t, got.FailureStreak)
	require.Nil(t, got.FailingSince)
	require.Nil(t, got.CircuitOpenUntil)
	again, err := store.SubscriptionSuccess(ctx, sub.ID)
	require.NoError(t, err)
	require.False(t, again, "nothing to recover from")

	// A failure that does not count for the circuit still disables a
	// subscription that has failed for the whole DisableAfter.
	for range 2 {
		fail(false)
	}
	_, err = outboxtest.Pool(t).Exec(ctx, `UPDATE `+store.Schema()+`.subscriptions SET failing_since = now() - interval '2 hours' WHERE id = $1`, sub.ID)
	require.NoError(t, err)
	late, err := store.SubscriptionFailure(ctx, sub.ID, policy, &outbox.AttemptFailure{Error: "503 Service Unavailable"})
	require.NoError(t, err)
	require.Equal(t, 2, late.Streak, "not counted")
	require.True(t, late.Disabled)
	require.Contains(t, late.Reason, "every attempt failed since")
	require.Contains(t, late.Reason, "last: 503 Service Unavailable")
}
