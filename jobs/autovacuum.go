package jobs

import (
	"context"
	"log/slog"
)

// autovacuumWarning begins the warning of a daemon whose tables autovacuum
// does not look after.
const autovacuumWarning = "autovacuum does not look after outboxd's tables"

// warnIfNoAutovacuum logs a warning when autovacuum does not look after the
// schema's tables: River's job rows and the relay's events then leave dead rows
// that nothing removes, and deliveries slow down within minutes under load.
func (d *Daemon) warnIfNoAutovacuum(ctx context.Context) {
	state, err := d.config.Store.Autovacuum(ctx)
	if err != nil {
		d.logger.DebugContext(ctx, "could not read autovacuum settings", slog.String("error", err.Error()))
		return
	}
	if !state.Off() {
		return
	}
	d.logger.WarnContext(ctx, autovacuumWarning+": dead rows of river_job and outbox.events pile up and deliveries slow down within minutes under load; turn autovacuum on (postgresql.conf) or reset autovacuum_enabled on the tables",
		slog.Bool("server_autovacuum_off", state.ServerOff), slog.Any("tables_autovacuum_off", state.TablesOff))
}
