package outbox_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/outboxtest"
)

// JobIDAt turns a time into the id where jobs created since begin, by
// bisecting the primary key; the delivery log's time filter and the endpoint
// figures stop their index walks there. Its answer keeps every job created at
// or after the time (less the margin) on its side.
func TestJobIDAt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := outboxtest.Store(t)
	empty, err := store.JobIDAt(ctx, time.Now())
	require.NoError(t, err)
	require.EqualValues(t, 1, empty, "no job: the walk starts and ends at once")

	// 1,000 jobs an hour apart, oldest first, and a hole in the ids.
	start := time.Now().Add(-1000 * time.Hour).Truncate(time.Second)
	_, err = outboxtest.Pool(t).Exec(ctx, fmt.Sprintf(`
		INSERT INTO %[1]s.river_job (id, kind, args, created_at, scheduled_at, queue)
		SELECT i + CASE WHEN i > 500 THEN 10000 ELSE 0 END, 'outboxd.delivery', '{}', $1::timestamptz + (i - 1) * interval '1 hour', now(), 'delivery'
		FROM generate_series(1, 1000) AS i`, store.Schema()), start)
	require.NoError(t, err)
	for _, tc := range []struct {
		at   time.Time
		want int64
	}{
		{start.Add(-time.Hour), 1},
		{start, 1},
		{start.Add(10 * time.Hour), 11},             // the 11th job, less the margin: after the 10th
		{start.Add(10*time.Hour + time.Minute), 11}, // exactly the margin later
		{start.Add(500 * time.Hour), 501},           // the 501st job is id 10501, and no id between
		{start.Add(999 * time.Hour), 11000},
		{start.Add(2000 * time.Hour), 11001}, // past the newest
	} {
		got, err := store.JobIDAt(ctx, tc.at)
		require.NoError(t, err)
		require.Equal(t, tc.want, got, "at %s", tc.at.Sub(start))
	}
	_ = outbox.JobIDMargin
}
