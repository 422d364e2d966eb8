package jobs

import (
	"context"
	"sync"
	"time"

	"github.com/outboxd/outboxd/outbox"
)

// targetsBatchMax caps the deliveries one lookup loads.
const targetsBatchMax = 200

// targetsTimeout bounds one lookup.
const targetsTimeout = 30 * time.Second

// targetLoader loads what delivery attempts need (outbox.DeliveryTarget) for
// the attempts that start together in one query. River fetches jobs in
// batches and starts their Work at once; the first attempt to ask starts a
// lookup right away, and those that ask while it runs are served together by
// the next. So a lone attempt waits for nothing, and under load one query
// serves many attempts instead of one each.
type targetLoader struct {
	store *outbox.Store

	mu      sync.Mutex
	pending []*targetRequest
	busy    bool
}

type targetRequest struct {
	key    outbox.DeliveryKey
	target *outbox.DeliveryTarget
	err    error
	done   chan struct{}
}

// load returns the target of one delivery, or the error the lookup met for it
// (outbox.ErrNotFound when its subscription no longer exists).
func (l *targetLoader) load(ctx context.Context, key outbox.DeliveryKey) (*outbox.DeliveryTarget, error) {
	req := &targetRequest{key: key, done: make(chan struct{})}
	l.mu.Lock()
	l.pending = append(l.pending, req)
	start := !l.busy
	l.busy = true
	l.mu.Unlock()
	if start {
		go l.run()
	}
	select {
	case <-req.done:
		return req.target, req.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// run serves lookups until none is pending.
func (l *targetLoader) run() {
	for {
		l.mu.Lock()
		n := min(len(l.pending), targetsBatchMax)
		if n == 0 {
			l.busy = false
			l.mu.Unlock()
			return
		}
		batch := l.pending[:n:n]
		l.pending = l.pending[n:]
		l.mu.Unlock()

		keys := make([]outbox.DeliveryKey, len(batch))
		for i, req := range batch {
			keys[i] = req.key
		}
		ctx, cancel := context.WithTimeout(context.Background(), targetsTimeout)
		targets, errs, err := l.store.DeliveryTargets(ctx, keys)
		cancel()
		for i, req := range batch {
			if err != nil {
				req.err = err
			} else {
				req.target, req.err = targets[i], errs[i]
			}
			close(req.done)
		}
	}
}
