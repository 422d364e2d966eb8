package letta_test

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox/letta"
	"github.com/outboxd/outboxd/outbox/letta/lettatest"
	"github.com/outboxd/outboxd/outbox/outboxtest"
)

type bundle struct {
	ctx    context.Context
	pool   *pgxpool.Pool
	schema string // outboxd's
	letta  string // Letta's
}

// setup makes Letta's tables in a fresh schema, as Letta's Docker image keeps
// them in a schema named after the database, and a fresh outboxd schema.
func setup(t *testing.T) *bundle {
	t.Helper()
	suffix := make([]byte, 6)
	_, err := rand.Read(suffix)
	require.NoError(t, err)
	return setupIn(t, "letta_"+hex.EncodeToString(suffix))
}

// setupIn makes Letta's tables in lettaSchema ("public" for a bare install; only
// one test may use public) and drops them afterwards.
func setupIn(t *testing.T, lettaSchema string) *bundle {
	t.Helper()
	ctx := context.Background()
	pool := outboxtest.Pool(t)
	b := &bundle{ctx: ctx, pool: pool, schema: outboxtest.Schema(t), letta: lettaSchema}
	drop := "DROP SCHEMA IF EXISTS " + b.letta + " CASCADE"
	if b.letta == "public" {
		drop = "DROP TABLE IF EXISTS public.messages, public.steps, public.runs, public.jobs, public.tools_agents, public.tools, public.agents; " +
			"DROP TYPE IF EXISTS public.stepstatus; DROP SEQUENCE IF EXISTS public.message_seq_id"
		_, err := pool.Exec(ctx, drop) // what an interrupted earlier run left behind
		require.NoError(t, err)
	}
	_, err := pool.Exec(ctx, lettatest.DDL(b.letta))
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := pool.Exec(context.WithoutCancel(ctx), drop)
		require.NoError(t, err)
	})
	return b
}

func (b *bundle) install(t *testing.T, events ...string) {
	t.Helper()
	_, err := letta.Install(b.ctx, b.pool, &letta.Config{Schema: b.schema, LettaSchema: b.letta, Events: events})
	require.NoError(t, err)
}

// lettaTx runs statements the way Letta does: one transaction, with search_path
// set to Letta's schema only (as Letta's Docker image does), unqualified names.
func (b *bundle) lettaTx(t *testing.T, statements ...string) {
	t.Helper()
	require.NoError(t, pgx.BeginFunc(b.ctx, b.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(b.ctx, "SET LOCAL search_path TO "+b.letta); err != nil {
			return err
		}
		for _, s := range statements {
			if _, err := tx.Exec(b.ctx, s); err != nil {
				return err
			}
		}
		return nil
	}))
}

// published is one outbox event as the test sees it.
type published struct {
	Type           string
	AgentID        string
	OrganizationID string
	Payload        map[string]any
}

// drain returns the events published since the last call, in order.
func (b *bundle) drain(t *testing.T) []published {
	t.Helper()
	rows, err := b.pool.Query(b.ctx, "DELETE FROM "+b.schema+".events RETURNING id, type, coalesce(agent_id, ''), coalesce(organization_id, ''), payload")
	require.NoError(t, err)
	type row struct {
		id int64
		published
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var out row
		var payload []byte
		if err := r.Scan(&out.id, &out.Type, &out.AgentID, &out.OrganizationID, &payload); err != nil {
			return out, err
		}
		return out, json.Unmarshal(payload, &out.Payload)
	})
	require.NoError(t, err)
	slices.SortFunc(all, func(x, y row) int { return cmp.Compare(x.id, y.id) })
	events := make([]published, len(all))
	for i, r := range all {
		events[i] = r.published
	}
	return events
}
