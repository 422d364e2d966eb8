package jobs

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/outboxd/outboxd/outbox"
)

// DefaultRetrySchedule is the wait before each retry: the first attempt is
// immediate, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h, eight attempts over
// about 27.6 hours (Svix's schedule).
var DefaultRetrySchedule = outbox.RetrySchedule{
	5 * time.Second,
	5 * time.Minute,
	30 * time.Minute,
	2 * time.Hour,
	5 * time.Hour,
	10 * time.Hour,
	10 * time.Hour,
}

// RetryJitter is the spread applied to each scheduled delay: ±20 %.
const RetryJitter = 0.2

// maxAttempts is how many attempts a schedule allows: the first plus one per delay.
func maxAttempts(schedule outbox.RetrySchedule) int {
	return len(schedule) + 1
}

// retryDelay is the wait after failed attempt number attempt (1-based): the
// schedule's delay, jittered by ±RetryJitter using random in [0, 1), lengthened
// (never shortened) to the receiver's Retry-After, which is capped at
// retryAfterMax.
func retryDelay(schedule outbox.RetrySchedule, attempt int, random float64, retryAfter, retryAfterMax time.Duration) time.Duration {
	if len(schedule) == 0 {
		return retryAfter
	}
	base := schedule[min(max(attempt-1, 0), len(schedule)-1)]
	delay := time.Duration(float64(base) * (1 - RetryJitter + 2*RetryJitter*random))
	if retryAfter > delay {
		delay = min(retryAfter, max(retryAfterMax, delay))
	}
	return delay
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP date.
// It returns 0 when the header is absent or unreadable.
func parseRetryAfter(value string, now time.Time) time.Duration {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0
	}
	if seconds, err := strconv.ParseInt(value, 10, 64); err == nil {
		if seconds <= 0 {
			return 0
		}
		return time.Duration(min(seconds, int64(30*24*time.Hour/time.Second))) * time.Second
	}
	if at, err := http.ParseTime(value); err == nil && at.After(now) {
		return at.Sub(now)
	}
	return 0
}
