package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/outboxd/outboxd/outbox/internal/dbsqlc"
)

// This file holds retention: outbox.events is partitioned by created_at, a UTC
// day per partition unless outbox.settings.event_partition_interval says
// otherwise (migration 10). Partitions are made ahead; one is dropped once it is
// older than the retention and nothing in it is still needed, which takes the
// table's lock for an instant instead of deleting millions of rows one by one.
// Rows that land in the DEFAULT partition (their time had no partition) are
// pruned row by row.

// EventPartition is one partition of outbox.events: events created in [From, To).
type EventPartition struct {
	Name     string
	From, To time.Time
}

// ErrLockTimeout is returned when a partition could not be dropped because the
// table's lock was not free within the lock timeout (a long transaction held
// it); retrying later is safe.
var ErrLockTimeout = errors.New("lock not free in time")

// EventPartitions lists the partitions of outbox.events, oldest first (not the
// DEFAULT partition).
func (s *Store) EventPartitions(ctx context.Context) ([]EventPartition, error) {
	rows, err := s.queries.EventPartitions(ctx, s.on(s.db))
	if err != nil {
		return nil, translateError("list event partitions", err)
	}
	parts := make([]EventPartition, len(rows))
	for i, row := range rows {
		parts[i] = EventPartition{Name: row.Name, From: row.FromTime, To: row.ToTime}
	}
	return parts, nil
}

// EventPartitionsEnsure makes the partitions that every moment from from to to
// needs and lacks (each covers outbox.settings.event_partition_interval, a day
// by default), and returns the names of those it made. Making one does not
// block producers.
func (s *Store) EventPartitionsEnsure(ctx context.Context, from, to time.Time) ([]string, error) {
	made, err := s.queries.EventPartitionsEnsure(ctx, s.on(s.db), &dbsqlc.EventPartitionsEnsureParams{FromTime: from, ToTime: to})
	if err != nil {
		return nil, translateError("create event partitions", err)
	}
	return made, nil
}

// PartitionBlockers says what keeps a partition past its retention.
type PartitionBlockers struct {
	// Undispatched is true while an event of the partition waits for the relay.
	Undispatched bool
	// UnfinishedDeliveries counts deliveries not yet final (due, retrying,
	// running, or waiting in an ordered line) of events created before the
	// partition's end.
	UnfinishedDeliveries int64
	// UnfinishedFanouts counts fan-out jobs an older outboxd left queued; while
	// any remain, no partition is dropped.
	UnfinishedFanouts int64
}

// Blocked reports whether anything keeps the partition.
func (b *PartitionBlockers) Blocked() bool {
	return b.Undispatched || b.UnfinishedDeliveries > 0 || b.UnfinishedFanouts > 0
}

// EventPartitionBlockers says what, if anything, keeps a partition from being
// dropped.
func (s *Store) EventPartitionBlockers(ctx context.Context, part *EventPartition) (*PartitionBlockers, error) {
	row, err := s.queries.EventPartitionBlocked(ctx, s.on(s.db), &dbsqlc.EventPartitionBlockedParams{
		FromTime: part.From, ToTime: part.To,
	})
	if err != nil {
		return nil, translateError("check event partition", err)
	}
	return &PartitionBlockers{
		Undispatched:         row.Undispatched,
		UnfinishedDeliveries: row.UnfinishedDeliveries,
		UnfinishedFanouts:    row.UnfinishedFanouts,
	}, nil
}

// EventPartitionDrop drops a partition with its events' idempotency keys, in
// two steps: it detaches the partition, which takes outbox.events' lock for a
// change of the catalog only, and then drops the detached table in a
// transaction of its own, so producers never wait for its files to go. It
// waits at most lockTimeout for the lock; when the lock is not free in time it
// returns ErrLockTimeout and changes nothing.
func (s *Store) EventPartitionDrop(ctx context.Context, name string, lockTimeout time.Duration) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		exec := s.on(tx)
		if err := s.queries.LockTimeoutSet(ctx, exec, fmt.Sprintf("%dms", max(lockTimeout.Milliseconds(), 1))); err != nil {
			return err
		}
		return s.queries.EventPartitionDetach(ctx, exec, name)
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "55P03" { // lock_not_available
		return fmt.Errorf("drop event partition %s: %w", name, ErrLockTimeout)
	}
	if err != nil {
		return translateError("drop event partition "+name, err)
	}
	_, err = s.EventsDetachedDrop(ctx)
	return err
}

// EventsDetachedDrop drops the partitions of outbox.events that were detached
// but not yet dropped (a retention run stopped between its two steps) and
// returns their names.
func (s *Store) EventsDetachedDrop(ctx context.Context) ([]string, error) {
	names, err := s.queries.EventsDetachedDrop(ctx, s.on(s.db))
	if err != nil {
		return nil, translateError("drop detached event partitions", err)
	}
	return names, nil
}

// EventsPruneDefault deletes up to limit events of the DEFAULT partition created
// before before whose deliveries are all final, and returns how many it deleted.
func (s *Store) EventsPruneDefault(ctx context.Context, before time.Time, limit int) (int64, error) {
	n, err := s.queries.EventsPruneDefault(ctx, s.on(s.db), &dbsqlc.EventsPruneDefaultParams{
		Before: before, Max: int32(min(max(limit, 1), 10_000)), //nolint:gosec // bounded
	})
	if err != nil {
		return 0, translateError("prune events", err)
	}
	return n, nil
}

// RetentionDue reports whether retention has work: an event created before
// before (only the oldest is looked at), or no partition of outbox.events
// reaching past until yet.
func (s *Store) RetentionDue(ctx context.Context, before, until time.Time) (bool, error) {
	due, err := s.queries.RetentionDue(ctx, s.on(s.db), &dbsqlc.RetentionDueParams{Before: before, Until: until})
	if err != nil {
		return false, translateError("look for retention work", err)
	}
	return due, nil
}
