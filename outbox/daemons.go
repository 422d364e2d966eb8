package outbox

import (
	"context"
	"time"

	"github.com/outboxd/outboxd/outbox/internal/dbsqlc"
)

// This file holds the daemons' record of being alive (migration 11): each
// `outboxd run` registers under its River client id and beats a heartbeat; the
// others take over the jobs of one whose heartbeat stops.

// Daemon is one `outboxd run` process, as it recorded itself.
type Daemon struct {
	ID          string     `json:"id"`
	Hostname    string     `json:"hostname"`
	PID         int        `json:"pid"`
	Version     string     `json:"version"`
	StartedAt   time.Time  `json:"started_at"`
	HeartbeatAt time.Time  `json:"heartbeat_at"`
	StoppedAt   *time.Time `json:"stopped_at"`
	StopReason  string     `json:"stop_reason,omitempty"`
}

// DaemonRegister records a daemon as alive, starting or coming back.
func (s *Store) DaemonRegister(ctx context.Context, d *Daemon) error {
	return translateError("register daemon", s.queries.DaemonRegister(ctx, s.on(s.db), &dbsqlc.DaemonRegisterParams{
		ID: d.ID, Hostname: d.Hostname, Pid: int32(d.PID), Version: d.Version, //nolint:gosec // a pid
	}))
}

// DaemonHeartbeat records that a daemon is alive. It reports false when the
// daemon was presumed dead meanwhile (and its jobs taken over): it must register
// again.
func (s *Store) DaemonHeartbeat(ctx context.Context, id string) (bool, error) {
	n, err := s.queries.DaemonHeartbeat(ctx, s.on(s.db), id)
	if err != nil {
		return false, translateError("beat heartbeat", err)
	}
	return n == 1, nil
}

// DaemonStop records that a daemon stopped.
func (s *Store) DaemonStop(ctx context.Context, id string) error {
	return translateError("record daemon stop", s.queries.DaemonStop(ctx, s.on(s.db), id))
}

// TakeOver is what one DaemonTakeOver did.
type TakeOver struct {
	// Daemons are the ids of the daemons presumed dead.
	Daemons []string
	// Jobs counts the jobs they were running, now due again (or discarded when
	// they had no attempt left).
	Jobs int64
}

// DaemonTakeOver presumes dead every daemon but self whose last heartbeat is
// older than deadAfter, and puts the jobs they were running back in the queue.
// Daemons stopped more than a day ago are forgotten.
func (s *Store) DaemonTakeOver(ctx context.Context, self string, deadAfter time.Duration) (*TakeOver, error) {
	row, err := s.queries.DaemonTakeOver(ctx, s.on(s.db), &dbsqlc.DaemonTakeOverParams{
		Self: self, DeadAfterSeconds: deadAfter.Seconds(),
	})
	if err != nil {
		return nil, translateError("take over dead daemons' jobs", err)
	}
	return &TakeOver{Daemons: row.Daemons, Jobs: row.Jobs}, nil
}

// DaemonList lists the daemons alive now or stopped within a day, live ones first.
func (s *Store) DaemonList(ctx context.Context) ([]*Daemon, error) {
	rows, err := s.queries.DaemonList(ctx, s.on(s.db))
	if err != nil {
		return nil, translateError("list daemons", err)
	}
	daemons := make([]*Daemon, len(rows))
	for i, row := range rows {
		daemons[i] = &Daemon{
			ID: row.ID, Hostname: row.Hostname, PID: int(row.Pid), Version: row.Version,
			StartedAt: row.StartedAt, HeartbeatAt: row.HeartbeatAt, StoppedAt: row.StoppedAt, StopReason: deref(row.StopReason),
		}
	}
	return daemons, nil
}
