package jobs

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
)

// periodicGate keeps a periodic maintenance job out of River's job list while
// it would find nothing to do: every run of it is a row that River UI lists,
// and the ordered sweep alone would be 1,440 a day on an installation without
// ordered subscriptions.
//
// River calls a periodic job's constructor on its leader at each tick, and a
// constructor must never block (River v0.51.1, PeriodicJobConstructor), so the
// gate cannot ask the database there. It answers with the result of the check
// it started at the previous tick (or at Start), and starts the next one in
// the background: the job runs at the first tick after work turned up, at most
// one interval later than it would have. A check that fails answers yes, so
// the job is never held back for want of an answer.
type periodicGate struct {
	check        func(context.Context) (bool, error)
	checkTimeout time.Duration

	mu       sync.Mutex
	due      bool // the last check's answer
	checking bool
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	// decisions counts the constructor's answers, for tests.
	decisions atomic.Int64
}

// periodicGateCheckTimeout bounds one check.
const periodicGateCheckTimeout = 10 * time.Second

func newPeriodicGate(check func(context.Context) (bool, error)) *periodicGate {
	return &periodicGate{check: check, checkTimeout: periodicGateCheckTimeout, due: true}
}

// start runs a first check, so that the first tick (and a RunOnStart job)
// decides on a fresh answer, and lets the constructor start further ones.
func (g *periodicGate) start(ctx context.Context) {
	g.mu.Lock()
	g.ctx, g.cancel = context.WithCancel(context.WithoutCancel(ctx))
	g.mu.Unlock()
	g.refresh(ctx)
}

// stop cancels a check in progress and waits for it.
func (g *periodicGate) stop() {
	g.mu.Lock()
	cancel := g.cancel
	g.ctx, g.cancel = nil, nil
	g.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	g.wg.Wait()
}

// refresh runs one check and keeps its answer.
func (g *periodicGate) refresh(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, g.checkTimeout)
	defer cancel()
	due, err := g.check(ctx)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.due = due || err != nil
	g.checking = false
}

// constructor is the periodic job's constructor: args when the last check
// found work, nil (River inserts nothing) when it did not.
func (g *periodicGate) constructor(args river.JobArgs) river.PeriodicJobConstructor {
	return func() (river.JobArgs, *river.InsertOpts) {
		g.mu.Lock()
		due := g.due
		if g.ctx != nil && !g.checking {
			g.checking = true
			g.wg.Add(1)
			go func(ctx context.Context) {
				defer g.wg.Done()
				g.refresh(ctx)
			}(g.ctx)
		}
		g.mu.Unlock()
		g.decisions.Add(1)
		if !due {
			return nil, nil
		}
		return args, nil
	}
}
