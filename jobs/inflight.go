package jobs

import (
	"context"
	"sync"
	"time"
)

// inflightLimiter caps one daemon's deliveries in flight per subscription, so a
// slow or hanging endpoint holds at most its share of the daemon's workers. An
// attempt over the cap may wait briefly for a slot (a fast endpoint frees one in
// milliseconds, and waiting is cheaper than a round trip through the queue);
// at most a quarter as many wait as the cap allows to run (a waiter holds a
// worker too), and the rest are deferred at once.
type inflightLimiter struct {
	mu   sync.Mutex
	subs map[string]*inflightSlots
	next uint64
	now  func() time.Time
}

type inflightSlots struct {
	running int
	started map[uint64]time.Time // when each held slot was taken
	waiters []chan struct{}      // each is handed a slot by closing it
}

func newInflightLimiter(now func() time.Time) *inflightLimiter {
	return &inflightLimiter{subs: make(map[string]*inflightSlots), now: now}
}

// acquire takes one of limit slots for subscription, waiting up to wait. It
// returns the release function, or false when no slot came free.
func (l *inflightLimiter) acquire(ctx context.Context, subscription string, limit int, wait time.Duration) (func(), bool) {
	l.mu.Lock()
	l.next++
	token := l.next
	release := func() { l.release(subscription, token) }
	slots := l.subs[subscription]
	if slots == nil {
		slots = &inflightSlots{started: map[uint64]time.Time{}}
		l.subs[subscription] = slots
	}
	if slots.running < limit {
		slots.running++
		slots.started[token] = l.now()
		l.mu.Unlock()
		return release, true
	}
	if wait <= 0 || len(slots.waiters) >= maxWaiters(limit) {
		l.mu.Unlock()
		return nil, false
	}
	handed := make(chan struct{})
	slots.waiters = append(slots.waiters, handed)
	l.mu.Unlock()

	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-handed:
	case <-timer.C:
	case <-ctx.Done():
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, w := range slots.waiters {
		if w == handed {
			slots.waiters = append(slots.waiters[:i], slots.waiters[i+1:]...)
			return nil, false
		}
	}
	// The slot was handed over (perhaps as the wait ended): it is ours.
	slots.started[token] = l.now()
	return release, true
}

func (l *inflightLimiter) release(subscription string, token uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	slots := l.subs[subscription]
	if slots == nil {
		return
	}
	delete(slots.started, token)
	if len(slots.waiters) > 0 {
		next := slots.waiters[0]
		slots.waiters = slots.waiters[1:]
		close(next) // the slot passes on; running stays the same
		return
	}
	slots.running--
	if slots.running <= 0 {
		delete(l.subs, subscription)
	}
}

// oldest is how long subscription's oldest delivery in flight on this daemon has
// been running: a slot is unlikely to free sooner when its endpoint is that slow.
func (l *inflightLimiter) oldest(subscription string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	slots := l.subs[subscription]
	if slots == nil {
		return 0
	}
	now := l.now()
	var oldest time.Duration
	for _, at := range slots.started {
		oldest = max(oldest, now.Sub(at))
	}
	return oldest
}

// maxWaiters is how many attempts may wait for one of limit slots: with the
// default cap at half the workers, a subscription's running and waiting attempts
// together hold at most five eighths of them.
func maxWaiters(limit int) int { return max(1, limit/4) }
