package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/outboxd/outboxd/outbox"
)

// Defaults for the heartbeat.
const (
	HeartbeatIntervalDefault = 2 * time.Second
	TakeOverAfterDefault     = 10 * time.Second
)

// heartbeat records that the daemon is alive (outbox.daemons) every interval
// and, on the same beat, takes over the running jobs of any daemon whose
// heartbeat is older than takeOverAfter: a killed daemon's deliveries go out
// again within seconds, while River's rescuer, which cannot tell a dead daemon
// from a slow request, waits for RescueStuckJobsAfter.
type heartbeat struct {
	store         *outbox.Store
	logger        *slog.Logger
	metrics       *Metrics
	self          *outbox.Daemon
	interval      time.Duration
	takeOverAfter time.Duration

	mu      sync.Mutex
	cancel  context.CancelFunc
	stopped chan struct{}

	testSignals heartbeatTestSignals
}

type heartbeatTestSignals struct {
	beat testSignal[*outbox.TakeOver] // after each beat, with what it took over
}

// newClientID makes a River client id that names the host and process and is
// unique across restarts.
func newClientID() string {
	host, _ := os.Hostname()
	host = strings.NewReplacer(".", "_", "-", "_").Replace(host)
	if len(host) > 40 {
		host = host[:40]
	}
	if host == "" {
		host = "unknown_host"
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	return "outboxd_" + host + "_" + hex.EncodeToString(suffix)
}

func (h *heartbeat) start(ctx context.Context) error {
	if err := h.store.DaemonRegister(ctx, h.self); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	ctx, h.cancel = context.WithCancel(context.WithoutCancel(ctx))
	h.stopped = make(chan struct{})
	go h.loop(ctx)
	return nil
}

// stop ends the beat and records the daemon stopped, so nobody takes over what
// it hands back itself.
func (h *heartbeat) stop(ctx context.Context) {
	h.mu.Lock()
	cancel, stopped := h.cancel, h.stopped
	h.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-stopped
	if err := h.store.DaemonStop(ctx, h.self.ID); err != nil {
		h.logger.WarnContext(ctx, "record daemon stop", slog.String("error", err.Error()))
	}
}

func (h *heartbeat) loop(ctx context.Context) {
	defer close(h.stopped)
	ticker := time.NewTicker(h.interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		h.beat(ctx)
	}
}

func (h *heartbeat) beat(ctx context.Context) {
	alive, err := h.store.DaemonHeartbeat(ctx, h.self.ID)
	if err != nil {
		if ctx.Err() == nil {
			h.logger.DebugContext(ctx, "heartbeat", slog.String("error", err.Error()))
		}
		return
	}
	if !alive {
		// Presumed dead while it could not reach the database: its running jobs
		// went to others, which may now send some of them a second time.
		h.logger.WarnContext(ctx, "this daemon was presumed dead (no heartbeat) and its running jobs were taken over by others; registering again",
			slog.String("daemon_id", h.self.ID))
		if err := h.store.DaemonRegister(ctx, h.self); err != nil {
			return
		}
	}
	took, err := h.store.DaemonTakeOver(ctx, h.self.ID, h.takeOverAfter)
	if err != nil {
		if ctx.Err() == nil {
			h.logger.WarnContext(ctx, "take over dead daemons' jobs", slog.String("error", err.Error()))
		}
		return
	}
	if len(took.Daemons) > 0 {
		h.metrics.JobsTakenOver.Add(float64(took.Jobs))
		h.logger.WarnContext(ctx, "daemons stopped answering; their running jobs are due again",
			slog.Any("daemons", took.Daemons), slog.Int64("jobs", took.Jobs), slog.Duration("no_heartbeat_for", h.takeOverAfter))
	}
	h.testSignals.beat.signal(took)
}
