package outbox

import "context"

// AutovacuumState says whether autovacuum looks after outboxd's tables. River
// updates each job row twice and deletes it, and the relay updates each event:
// without vacuum, those dead rows stay in river_job, outbox.events and their
// indexes, and River's fetches slow down within minutes under load (the soak,
// docs/benchmarks-soak.md: 660 → 150 deliveries/s in three minutes).
type AutovacuumState struct {
	// ServerOff is true when the server runs with autovacuum = off.
	ServerOff bool
	// TablesOff are the schema's tables with autovacuum_enabled = false.
	TablesOff []string
}

// Off reports whether autovacuum leaves any of the schema's tables alone.
func (a *AutovacuumState) Off() bool { return a.ServerOff || len(a.TablesOff) > 0 }

// Autovacuum reads whether autovacuum looks after the schema's tables.
func (s *Store) Autovacuum(ctx context.Context) (*AutovacuumState, error) {
	row, err := s.queries.AutovacuumOff(ctx, s.on(s.db))
	if err != nil {
		return nil, translateError("read autovacuum settings", err)
	}
	return &AutovacuumState{ServerOff: row.ServerOff != nil && *row.ServerOff, TablesOff: row.TablesOff}, nil
}
