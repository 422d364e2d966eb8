package jobs

import (
	"net/http"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/outboxtest"
)

func TestRetryDelay(t *testing.T) {
	t.Parallel()

	schedule := outbox.RetrySchedule{5 * time.Second, 5 * time.Minute, 30 * time.Minute}
	tests := []struct {
		name          string
		attempt       int
		random        float64
		retryAfter    time.Duration
		retryAfterMax time.Duration
		want          time.Duration
	}{
		{"FirstRetryNoJitter", 1, 0.5, 0, time.Hour, 5 * time.Second},
		{"JitterLowEdge", 1, 0, 0, time.Hour, 4 * time.Second},
		{"JitterAboveMiddle", 1, 0.75, 0, time.Hour, 5500 * time.Millisecond},
		{"SecondRetry", 2, 0.5, 0, time.Hour, 5 * time.Minute},
		{"BeyondScheduleUsesLast", 9, 0.5, 0, time.Hour, 30 * time.Minute},
		{"RetryAfterLengthens", 1, 0.5, 2 * time.Minute, time.Hour, 2 * time.Minute},
		{"RetryAfterNeverShortens", 2, 0.5, 10 * time.Second, time.Hour, 5 * time.Minute},
		{"RetryAfterIsCapped", 1, 0.5, 48 * time.Hour, time.Hour, time.Hour},
		{"CapNeverShortensTheSchedule", 3, 0.5, 48 * time.Hour, time.Minute, 30 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, retryDelay(schedule, tt.attempt, tt.random, tt.retryAfter, tt.retryAfterMax))
		})
	}
}

func TestRetryDelayStaysWithinJitter(t *testing.T) {
	t.Parallel()

	schedule := outbox.RetrySchedule{10 * time.Second}
	for _, random := range []float64{0, 0.1, 0.5, 0.9, 0.999999999} {
		d := retryDelay(schedule, 1, random, 0, time.Hour)
		require.GreaterOrEqual(t, d, 8*time.Second)
		require.Less(t, d, 12*time.Second)
	}
}

func TestDefaultRetrySchedule(t *testing.T) {
	t.Parallel()

	// Immediately, then 5 s, 5 m, 30 m, 2 h, 5 h, 10 h, 10 h: eight attempts.
	require.Equal(t, "5s,5m0s,30m0s,2h0m0s,5h0m0s,10h0m0s,10h0m0s", DefaultRetrySchedule.String())
	require.Equal(t, 8, maxAttempts(DefaultRetrySchedule))
	var total time.Duration
	for _, d := range DefaultRetrySchedule {
		total += d
	}
	require.Equal(t, 27*time.Hour+35*time.Minute+5*time.Second, total)
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()

	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		value string
		want  time.Duration
	}{
		{"", 0},
		{"120", 2 * time.Minute},
		{" 7 ", 7 * time.Second},
		{"0", 0},
		{"-5", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"99999999999", 30 * 24 * time.Hour},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, parseRetryAfter(tt.value, now), "%q", tt.value)
	}
}

// A delivery rescued from a daemon that died mid-attempt has no answer of the
// receiver's: it goes again in about a second, not after the schedule's next
// wait.
func TestRescuedDeliveryRetriesSoon(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_000, 0)
	w := &deliveryWorker{now: func() time.Time { return now }, random: func() float64 { return 1 }}
	job := &river.Job[DeliveryArgs]{JobRow: &rivertype.JobRow{ID: 7, Attempt: 2}}
	require.Equal(t, now.Add(1200*time.Millisecond), w.NextRetry(job))

	// Work's own decision, when it made one, wins.
	w.nextRetry.Store(int64(7), now.Add(time.Hour))
	require.Equal(t, now.Add(time.Hour), w.NextRetry(job))
}

// River's JobRetry notifies nobody, so a delivery retried by hand (the API, the
// CLI, the console) would wait for the next fetch poll. The retry announces it:
// here River polls hourly, and the retried delivery still goes out at once.
func TestRetriedByHandGoesAtOnce(t *testing.T) {
	t.Parallel()
	rcv := newTestReceiver(t, nil)
	b := setupDaemon(t, func(c *Config) { c.FetchPollInterval = time.Hour })
	outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{URL: rcv.server.URL})
	outboxtest.Event(b.ctx, t, b.store, nil)
	rcv.next(t)
	job := b.waitFinal(t, 1)[0]
	require.Equal(t, rivertype.JobStateCompleted, job.State)

	_, err := b.daemon.Operations().DeliveryRetry(b.ctx, job.ID)
	require.NoError(t, err)
	rcv.next(t)
	require.Equal(t, rivertype.JobStateCompleted, b.waitFinal(t, 1)[0].State)
}
