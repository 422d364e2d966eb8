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
// at most as many wait as the cap allows to run, and the rest are deferred at once.
type inflightLimiter struct {
	mu   sync.Mutex
	subs map[string]*inflightSlots
}

type inflightSlots struct {
	running int
	waiters []chan struct{} // each is handed a slot by closing it
}

func newInflightLimiter() *inflightLimiter {
	return &inflightLimiter{subs: make(map[string]*inflightSlots)}
}

// acquire takes one of limit slots for subscription, waiting up to wait. It
// returns the release function, or false when no slot came free.
func (l *inflightLimiter) acquire(ctx context.Context, subscription string, limit int, wait time.Duration) (func(), bool) {
	release := func() { l.release(subscription) }
	l.mu.Lock()
	slots := l.subs[subscription]
	if slots == nil {
		slots = &inflightSlots{}
		l.subs[subscription] = slots
	}
	if slots.running < limit {
		slots.running++
		l.mu.Unlock()
		return release, true
	}
	if wait <= 0 || len(slots.waiters) >= limit {
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
		return release, true
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
	// A slot was handed over as the wait ended: it is ours.
	return release, true
}

func (l *inflightLimiter) release(subscription string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	slots := l.subs[subscription]
	if slots == nil {
		return
	}
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

// inFlight reports how many of subscription's deliveries hold a slot.
func (l *inflightLimiter) inFlight(subscription string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if slots := l.subs[subscription]; slots != nil {
		return slots.running
	}
	return 0
}
