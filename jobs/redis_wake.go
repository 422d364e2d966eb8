package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/outboxd/outboxd/outbox"
)

// redisWaker subscribes to the wake channel on Redis (outbox.WakeChannel: the
// schema's name + ".wake") and wakes the relay on every message, so a producer
// that PUBLISHes after committing gets its events claimed at once, without
// Postgres NOTIFY's commit-time lock. Redis only accelerates: while it is down or
// absent the relay keeps polling and nothing is lost; Degraded says so.
type redisWaker struct {
	client  *redis.Client
	channel string
	relay   *Relay
	logger  *slog.Logger

	mu      sync.Mutex
	state   error // nil when subscribed
	cancel  context.CancelFunc
	stopped chan struct{}
	pubsub  *redis.PubSub // the current subscription; closing it ends a blocked read

	// subscribed is signalled each time a subscription is confirmed (tests).
	subscribed testSignal[struct{}]
}

var errRedisConnecting = errors.New("connecting")

func newRedisWaker(client *redis.Client, schema string, relay *Relay, logger *slog.Logger) *redisWaker {
	return &redisWaker{
		client:  client,
		channel: outbox.WakeChannel(schema),
		relay:   relay,
		logger:  logger.With(slog.String("component", "redis_wake")),
		state:   errRedisConnecting,
	}
}

func (w *redisWaker) start(ctx context.Context) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w.mu.Lock()
	w.cancel, w.stopped = cancel, make(chan struct{})
	w.mu.Unlock()
	go w.loop(ctx)
}

func (w *redisWaker) stop() {
	w.mu.Lock()
	cancel, stopped := w.cancel, w.stopped
	w.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	w.mu.Lock()
	if w.pubsub != nil {
		_ = w.pubsub.Close() // a read in progress does not watch ctx
	}
	w.mu.Unlock()
	<-stopped
}

func (w *redisWaker) setState(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if (w.state == nil) != (err == nil) {
		if err == nil {
			w.logger.Info("subscribed to Redis wake-ups", slog.String("channel", w.channel))
		} else if !errors.Is(err, errRedisConnecting) {
			w.logger.Warn("Redis wake-ups unavailable; polling carries on", slog.String("error", err.Error()))
		}
	}
	w.state = err
}

// degraded returns why Redis wake-ups are not working, or "".
func (w *redisWaker) degraded() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state == nil {
		return ""
	}
	return fmt.Sprintf("redis wake-ups: %v (the relay polls instead)", w.state)
}

func (w *redisWaker) loop(ctx context.Context) {
	defer close(w.stopped)
	const backoffMin = time.Second
	backoff := backoffMin
	for ctx.Err() == nil {
		wasSubscribed, err := w.subscribe(ctx)
		if ctx.Err() != nil {
			return
		}
		if wasSubscribed {
			backoff = backoffMin // a new outage starts again from the shortest wait
		}
		w.setState(err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// subscribe listens until the connection fails; it returns whether it had
// subscribed, and why it stopped.
func (w *redisWaker) subscribe(ctx context.Context) (bool, error) {
	pubsub := w.client.Subscribe(ctx, w.channel)
	w.mu.Lock()
	w.pubsub = pubsub
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.pubsub = nil
		w.mu.Unlock()
		_ = pubsub.Close()
	}()
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if _, err := pubsub.Receive(ctx); err != nil {
		return false, err
	}
	w.setState(nil)
	w.subscribed.signal(struct{}{})
	for {
		if _, err := pubsub.ReceiveMessage(ctx); err != nil {
			return true, err
		}
		w.relay.Wake()
	}
}
