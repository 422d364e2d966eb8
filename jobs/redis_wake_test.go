package jobs

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/outboxtest"
)

// redisClient connects to the test Redis (REDIS_URL, default 127.0.0.1:6379).
// Without one the test is skipped, except under CI, where it fails.
func redisClient(t *testing.T) *redis.Client {
	t.Helper()
	url := os.Getenv("REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	options, err := redis.ParseURL(url)
	require.NoError(t, err)
	client := redis.NewClient(options)
	t.Cleanup(func() { _ = client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI needs Redis at %s: %v", options.Addr, err)
		}
		t.Skipf("no Redis at %s: %v", options.Addr, err)
	}
	return client
}

func TestRedisWakesTheRelay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := redisClient(t)
	rcv := newTestReceiver(t, nil)
	store := outboxtest.Store(t)
	outboxtest.Subscription(ctx, t, store, &outboxtest.SubscriptionOpts{URL: rcv.server.URL})
	daemon, err := NewDaemon(outboxtest.NewPool(t, 8), &Config{
		Store:             store,
		Guard:             outboxtest.LoopbackGuard(),
		Relay:             RelayConfig{PollInterval: time.Hour}, // only a wake-up can claim in time
		FetchPollInterval: 50 * time.Millisecond,
		Redis:             client,
	})
	require.NoError(t, err)
	daemon.relay.testSignals.claimed.init(t)
	daemon.redis.subscribed.init(t)
	require.NoError(t, daemon.Start(ctx))
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		require.NoError(t, daemon.Stop(stopCtx))
	})

	// The relay's first pass finds nothing and then waits an hour.
	require.Zero(t, daemon.relay.testSignals.claimed.waitOrTimeout(t))
	daemon.redis.subscribed.waitOrTimeout(t)
	require.Empty(t, daemon.Degraded(ctx))

	event := outboxtest.Event(ctx, t, store, nil)
	require.NoError(t, client.Publish(ctx, outbox.WakeChannel(store.Schema()), "1").Err())
	require.Equal(t, 1, daemon.relay.testSignals.claimed.waitOrTimeout(t), "the wake-up made the relay claim")
	require.Equal(t, event.ID, rcv.next(t).header.Get("webhook-id"))
}

func TestRedisDownLeavesPollingAndSaysSo(t *testing.T) {
	t.Parallel()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := listener.Addr().String()
	require.NoError(t, listener.Close()) // nothing listens there now
	client := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { _ = client.Close() })

	rcv := newTestReceiver(t, nil)
	b := setupDaemon(t, func(c *Config) { c.Redis = client })
	outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{URL: rcv.server.URL})
	event := outboxtest.Event(b.ctx, t, b.store, nil)
	require.Equal(t, event.ID, rcv.next(t).header.Get("webhook-id"), "polling delivers without Redis")

	require.Eventually(t, func() bool { return len(b.daemon.Degraded(b.ctx)) == 1 }, 10*time.Second, 10*time.Millisecond)
	require.Contains(t, b.daemon.Degraded(b.ctx)[0], "the relay polls instead")
	require.NoError(t, b.daemon.Ready(b.ctx), "degraded, not unready")
}

// privateRedis starts a redis-server of the test's own, so the test can stop it.
// Without the binary the test is skipped, except under CI, where it fails.
func privateRedis(t *testing.T) (*redis.Client, *exec.Cmd) {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI needs redis-server on PATH: %v", err)
		}
		t.Skipf("no redis-server: %v", err)
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := listener.Addr().(*net.TCPAddr).Port
	require.NoError(t, listener.Close())
	server := exec.Command(path, "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no")
	require.NoError(t, server.Start())
	t.Cleanup(func() { _ = server.Process.Kill(); _ = server.Wait() })
	client := redis.NewClient(&redis.Options{Addr: listener.Addr().String(), DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { _ = client.Close() })
	require.Eventually(t, func() bool { return client.Ping(context.Background()).Err() == nil }, 10*time.Second, 20*time.Millisecond)
	return client, server
}

func TestStoppingRedisLosesNothing(t *testing.T) {
	t.Parallel()
	client, server := privateRedis(t)
	rcv := newTestReceiver(t, nil)
	b := setupDaemon(t, func(c *Config) {
		c.Redis = client
		c.Relay.PollInterval = 300 * time.Millisecond // wake-ups make the difference while Redis is up
	})
	outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{URL: rcv.server.URL})
	wake := func() { _ = client.Publish(b.ctx, outbox.WakeChannel(b.store.Schema()), "1").Err() } // a producer ignores a failed PUBLISH

	published := map[string]bool{}
	publish := func(n int) {
		for range n {
			published[outboxtest.Event(b.ctx, t, b.store, nil).ID] = true
			wake()
		}
	}
	publish(20)
	require.NoError(t, server.Process.Kill()) // Redis goes away mid-stream
	_ = server.Wait()
	publish(20)
	require.Eventually(t, func() bool { return len(b.daemon.Degraded(b.ctx)) == 1 }, 10*time.Second, 10*time.Millisecond)
	publish(20)

	got := map[string]bool{}
	for len(got) < len(published) {
		id := rcv.next(t).header.Get("webhook-id")
		require.True(t, published[id], "unexpected event %s", id)
		got[id] = true
	}
	require.NoError(t, b.daemon.Ready(b.ctx), "degraded, not unready")
}
