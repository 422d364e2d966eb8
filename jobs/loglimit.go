package jobs

import (
	"sync"
	"time"
)

// logLimiter lets a warning about one thing (a subscription, say) through the
// first time it happens and then at most once per interval, counting the
// occurrences it holds back, so a condition that repeats on every attempt is
// reported without flooding the log.
type logLimiter struct {
	interval time.Duration
	now      func() time.Time

	mu   sync.Mutex
	seen map[string]*logLimited
}

type logLimited struct {
	logged time.Time // when a warning last went through
	held   int       // occurrences since, not logged
}

// logLimiterPrune is how many keys a limiter keeps before it forgets the ones
// whose interval has passed.
const logLimiterPrune = 1000

func newLogLimiter(interval time.Duration, now func() time.Time) *logLimiter {
	return &logLimiter{interval: interval, now: now, seen: map[string]*logLimited{}}
}

// allow reports whether to log this occurrence of key and, if so, how many
// occurrences were held back since the last one logged.
func (l *logLimiter) allow(key string) (held int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	entry := l.seen[key]
	if entry != nil && now.Sub(entry.logged) < l.interval {
		entry.held++
		return 0, false
	}
	if entry == nil {
		if len(l.seen) >= logLimiterPrune {
			for k, e := range l.seen {
				if now.Sub(e.logged) >= l.interval {
					delete(l.seen, k)
				}
			}
		}
		entry = &logLimited{}
		l.seen[key] = entry
	}
	held = entry.held
	entry.logged, entry.held = now, 0
	return held, true
}
