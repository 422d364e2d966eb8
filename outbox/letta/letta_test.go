package letta_test

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/jobs"
	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/letta"
	"github.com/outboxd/outboxd/outbox/letta/lettatest"
	"github.com/outboxd/outboxd/outbox/outboxtest"
	"github.com/outboxd/outboxd/outbox/secretbox"
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

// startDaemon runs a daemon on the bundle's outboxd schema, with loopback allowed
// and fast polling, and returns its store.
func (b *bundle) startDaemon(t *testing.T, keyring *secretbox.Keyring) *outbox.Store {
	t.Helper()
	store, err := outbox.NewStore(b.pool, &outbox.StoreConfig{Schema: b.schema, Keyring: keyring, Guard: outboxtest.LoopbackGuard()})
	require.NoError(t, err)
	daemon, err := jobs.NewDaemon(outboxtest.NewPool(t, 6), &jobs.Config{
		Store: store, Guard: outboxtest.LoopbackGuard(), FetchPollInterval: 20 * time.Millisecond,
		Relay: jobs.RelayConfig{PollInterval: 20 * time.Millisecond},
	})
	require.NoError(t, err)
	require.NoError(t, daemon.Start(b.ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, daemon.Stop(ctx))
	})
	return store
}

// request is one request a receiver got.
type request struct {
	header http.Header
	body   []byte
}

// receiver is a loopback webhook receiver; respond gives the n-th answer (1-based).
type receiver struct {
	server   *httptest.Server
	requests chan request
	count    atomic.Int64
}

func newReceiver(t *testing.T, respond func(n int64) int) *receiver {
	t.Helper()
	rcv := &receiver{requests: make(chan request, 100)}
	rcv.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		status := respond(rcv.count.Add(1))
		if status < 300 {
			rcv.requests <- request{header: r.Header.Clone(), body: body}
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(rcv.server.Close)
	return rcv
}

// next waits for the next accepted request.
func (r *receiver) next(t *testing.T) request {
	t.Helper()
	select {
	case req := <-r.requests:
		return req
	case <-time.After(30 * time.Second):
		t.Fatalf("the receiver got nothing in time (%d requests)", r.count.Load())
		return request{}
	}
}
