package jobs

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
)

func TestInflightLimiter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Unix(1_000, 0)
	l := newInflightLimiter(func() time.Time { return now })

	first, ok := l.acquire(ctx, "sub", 2, 0)
	require.True(t, ok)
	now = now.Add(3 * time.Second)
	second, ok := l.acquire(ctx, "sub", 2, 0)
	require.True(t, ok)
	_, ok = l.acquire(ctx, "sub", 2, 0)
	require.False(t, ok, "over the cap, with no wait")
	require.Equal(t, 3*time.Second, l.oldest("sub"))
	other, ok := l.acquire(ctx, "other", 2, 0)
	require.True(t, ok, "caps are per subscription")

	// A waiter is handed the slot the first release frees.
	handed := make(chan func())
	go func() {
		release, ok := l.acquire(ctx, "sub", 2, time.Minute)
		if ok {
			handed <- release
		}
		close(handed)
	}()
	require.Eventually(t, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.subs["sub"].waiters) == 1
	}, 5*time.Second, time.Millisecond)
	first()
	third := <-handed
	require.NotNil(t, third)
	require.Zero(t, l.oldest("sub"), "the slots held now were taken at the current time")

	// A waiter gives up after its wait; waiters never outnumber the cap.
	_, ok = l.acquire(ctx, "sub", 2, 10*time.Millisecond)
	require.False(t, ok)

	second()
	third()
	other()
	l.mu.Lock()
	require.Empty(t, l.subs, "nothing held, nothing kept")
	l.mu.Unlock()
}

func TestDeliveryConfigDefaultsAreStable(t *testing.T) {
	t.Parallel()
	never := DeliveryConfig{Circuit: outbox.CircuitPolicy{DisableAfter: -1}}.withDefaults().withDefaults()
	require.Negative(t, never.Circuit.DisableAfter, "never stays never, however often defaults are applied")
	defaults := DeliveryConfig{}.withDefaults().withDefaults()
	require.Equal(t, CircuitDisableAfterDefault, defaults.Circuit.DisableAfter)
	require.Equal(t, CircuitThresholdDefault, defaults.Circuit.Threshold)
}

// Running and waiting attempts together never take every worker: a quarter of
// the cap may wait, and the next is refused at once however long it would wait.
func TestInflightLimiterCapsWaiters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := newInflightLimiter(time.Now)
	const limit = 8
	var releases []func()
	for range limit {
		release, ok := l.acquire(ctx, "sub", limit, 0)
		require.True(t, ok)
		releases = append(releases, release)
	}
	waited := make(chan bool, maxWaiters(limit))
	for range maxWaiters(limit) {
		go func() {
			release, ok := l.acquire(ctx, "sub", limit, time.Minute)
			if ok {
				release()
			}
			waited <- ok
		}()
	}
	require.Eventually(t, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.subs["sub"].waiters) == maxWaiters(limit)
	}, 5*time.Second, time.Millisecond)
	require.Equal(t, 2, maxWaiters(limit))

	start := time.Now()
	_, ok := l.acquire(ctx, "sub", limit, time.Minute)
	require.False(t, ok, "no room to wait")
	require.Less(t, time.Since(start), 10*time.Second, "refused at once, not after its wait")

	for _, release := range releases {
		release()
	}
	for range maxWaiters(limit) {
		require.True(t, <-waited, "each waiter was handed a slot")
	}
}
