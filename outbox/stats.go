package outbox

import "context"

// JobCount is how many River jobs of a queue are in a state.
type JobCount struct {
	Queue string
	State string
	Jobs  int64
}

// Health is what operators watch besides the backlog.
type Health struct {
	Jobs                  []JobCount
	DisabledSubscriptions int64
	// SecretsExpiringSoon are secrets that stop signing within 24 h: receivers
	// still verifying with them must switch.
	SecretsExpiringSoon int64
}

// JobCountsUnfinished counts the jobs not finished yet (available, pending,
// retryable, running, scheduled) by queue and state. Unlike Health it reads no
// finished job, so it stays fast with millions of them kept.
func (s *Store) JobCountsUnfinished(ctx context.Context) ([]JobCount, error) {
	rows, err := s.queries.JobCountsUnfinished(ctx, s.on(s.db))
	if err != nil {
		return nil, translateError("count unfinished jobs", err)
	}
	counts := make([]JobCount, len(rows))
	for i, row := range rows {
		counts[i] = JobCount{Queue: row.Queue, State: row.State, Jobs: row.Jobs}
	}
	return counts, nil
}

// Health reads job counts and subscription health for metrics.
func (s *Store) Health(ctx context.Context) (*Health, error) {
	exec := s.on(s.db)
	rows, err := s.queries.JobCountsByQueueState(ctx, exec)
	if err != nil {
		return nil, translateError("count jobs", err)
	}
	health := &Health{Jobs: make([]JobCount, len(rows))}
	for i, row := range rows {
		health.Jobs[i] = JobCount{Queue: row.Queue, State: row.State, Jobs: row.Jobs}
	}
	subs, err := s.queries.SubscriptionHealth(ctx, exec)
	if err != nil {
		return nil, translateError("check subscriptions", err)
	}
	health.DisabledSubscriptions = subs.Disabled
	health.SecretsExpiringSoon = subs.SecretsExpiring
	return health, nil
}
