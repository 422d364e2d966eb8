package jobs

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/outboxtest"
)

// A Postgres outage of a few seconds is logged once when it starts, with a
// reminder every OutageReminder, and once when it ends, with how long it
// lasted, instead of an error from every part of the daemon at every try (205
// lines in 5 s before). Nothing is lost meanwhile.
func TestDatabaseOutageIsReportedNotFlooded(t *testing.T) {
	t.Parallel()
	proxy := newPGProxy(t)
	pool := proxy.pool(t, 12)
	schema := outboxtest.Schema(t)
	keyring := outboxtest.Keyring(t)
	store, err := outbox.NewStore(pool, &outbox.StoreConfig{Schema: schema, Keyring: keyring, Guard: outboxtest.LoopbackGuard()})
	require.NoError(t, err)
	// The test itself reaches Postgres directly.
	direct, err := outbox.NewStore(outboxtest.Pool(t), &outbox.StoreConfig{Schema: schema, Keyring: keyring, Guard: outboxtest.LoopbackGuard()})
	require.NoError(t, err)
	logs := newLogRecorder()
	const reminder = time.Second
	b := startDaemon(t, context.Background(), store, pool, func(c *Config) {
		c.Logger = slog.New(logs)
		c.OutageReminder = reminder
	})
	rcv := newTestReceiver(t, nil)
	outboxtest.Subscription(b.ctx, t, direct, &outboxtest.SubscriptionOpts{URL: rcv.server.URL})
	outboxtest.Event(b.ctx, t, direct, nil)
	rcv.next(t)
	problems := func() []loggedRecord {
		return logs.records(func(r loggedRecord) bool {
			// (CI's Postgres runs without autovacuum, which the daemon points out.)
			return r.Level >= slog.LevelWarn && !strings.HasPrefix(r.Message, autovacuumWarning)
		})
	}
	require.Empty(t, problems())

	// Postgres goes away for a few seconds (two reminders), while producers,
	// who reach it another way, keep publishing.
	proxy.setDown(true)
	cut := time.Now()
	var published []string
	for range 5 {
		published = append(published, outboxtest.Event(b.ctx, t, direct, nil).ID)
	}
	require.Eventually(t, func() bool {
		return len(logs.records(func(r loggedRecord) bool { return strings.HasPrefix(r.Message, "database still unreachable") })) >= 2
	}, 30*time.Second, 10*time.Millisecond)
	proxy.setDown(false)
	restored := time.Now()

	// Everything published meanwhile arrives.
	got := map[string]bool{}
	for len(got) < len(published) {
		got[decodeWebhook(t, rcv.next(t).body).ID] = true
	}
	for _, id := range published {
		require.True(t, got[id], id)
	}
	var ended []loggedRecord
	require.Eventually(t, func() bool {
		ended = logs.records(func(r loggedRecord) bool { return strings.HasPrefix(r.Message, "database reachable again") })
		return len(ended) > 0
	}, 10*time.Second, 10*time.Millisecond)

	all := problems()
	var started, reminders []loggedRecord
	for _, r := range all {
		switch {
		case strings.HasPrefix(r.Message, "database unreachable"):
			started = append(started, r)
		case strings.HasPrefix(r.Message, "database still unreachable"):
			reminders = append(reminders, r)
		}
	}
	outage := restored.Sub(cut)
	require.Len(t, started, 1, summary(all))
	require.Equal(t, slog.LevelError, started[0].Level)
	require.NotEmpty(t, started[0].Attrs["error"])
	require.Len(t, ended, 1, summary(all))
	require.Equal(t, slog.LevelWarn, ended[0].Level)
	lasted, err := time.ParseDuration(ended[0].Attrs["lasted"])
	require.NoError(t, err)
	// From the first failure after the cut to the first answer after it ends
	// (pinged every second).
	require.Greater(t, lasted, outage-time.Second, "lasted %s, the outage %s", lasted, outage)
	require.Less(t, lasted, outage+5*time.Second, "lasted %s, the outage %s", lasted, outage)
	require.NotEqual(t, "0", ended[0].Attrs["failures"])
	require.LessOrEqual(t, len(reminders), int(outage/reminder)+1, "a reminder per OutageReminder")
	for _, r := range reminders {
		require.Equal(t, slog.LevelError, r.Level)
		require.NotEmpty(t, r.Attrs["lasted"])
		require.NotEmpty(t, r.Attrs["failures"])
	}
	// Nothing else: no line per failed query, claim or fetch.
	require.Len(t, all, len(started)+len(reminders)+len(ended), summary(all))
	t.Logf("outage of %s: %d lines\n%s", outage.Round(time.Millisecond), len(all), summary(all))
}

func TestDatabaseHealthReports(t *testing.T) {
	t.Parallel()
	logs := newLogRecorder()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	recovered := 0
	h := newDBHealth(slog.New(logs), nil, time.Minute)
	h.now = func() time.Time { return now }
	h.recovered = func() { recovered++ }
	ctx := context.Background()

	require.False(t, h.failed(ctx, errors.New("syntax error at or near \"SELEC\" (SQLSTATE 42601)")), "not an outage: the caller logs it")
	h.succeeded(ctx, now)
	require.Empty(t, logs.records(nil))

	before := now.Add(-time.Millisecond) // a call under way when the outage begins
	refused := errors.New("failed to connect to `user=outboxd database=outboxd`: 10.0.0.5:5432 (db): dial error: dial tcp 10.0.0.5:5432: connect: connection refused")
	require.True(t, h.failed(ctx, refused))
	for range 10 {
		now = now.Add(time.Second)
		require.True(t, h.failed(ctx, refused))
	}
	river := slog.NewRecord(now, slog.LevelError, "producer: Error fetching jobs", 0)
	river.AddAttrs(slog.String("err", "context deadline exceeded"))
	require.True(t, h.holdBack(ctx, river, true), "River, while the database is down")
	require.False(t, h.holdBack(ctx, river, false), "the daemon's own parts: only what says a connection failed")
	h.remind(ctx)
	now = now.Add(50 * time.Second)
	h.remind(ctx) // a minute since it started
	now = now.Add(30 * time.Second)
	h.remind(ctx) // not yet a minute since the reminder
	h.succeeded(ctx, before)
	now = now.Add(30 * time.Second)
	h.succeeded(ctx, now)
	h.succeeded(ctx, now)

	records := logs.records(nil)
	require.Len(t, records, 3, summary(records))
	require.Equal(t, slog.LevelError, records[0].Level)
	require.Equal(t, "database unreachable; the errors it causes are held back, reported every 1m0s until it answers again", records[0].Message)
	require.Equal(t, refused.Error(), records[0].Attrs["error"])
	require.Equal(t, "database still unreachable after 1m0s", records[1].Message)
	require.Equal(t, "1m0s", records[1].Attrs["lasted"])
	require.Equal(t, "12", records[1].Attrs["failures"])
	require.Equal(t, "1", records[1].Attrs["log_records_held_back"])
	require.Equal(t, slog.LevelWarn, records[2].Level)
	require.Equal(t, "database reachable again after 2m0s", records[2].Message)
	require.Equal(t, "2m0s", records[2].Attrs["lasted"])
	require.Equal(t, 1, recovered)

	// A record that says a connection failed right after is a straggler of the
	// outage that ended; later, it starts the next outage.
	eof := slog.NewRecord(now, slog.LevelWarn, "notifier.Notifier: Error from notification wait", 0)
	eof.AddAttrs(slog.String("err", "unexpected EOF"))
	require.True(t, h.holdBack(ctx, eof, false))
	require.Len(t, logs.records(nil), 3)
	now = now.Add(outageSettle)
	require.True(t, h.holdBack(ctx, eof, false))
	require.Len(t, logs.records(nil), 4)
	require.Equal(t, "unexpected EOF", logs.records(nil)[3].Attrs["error"])
}
