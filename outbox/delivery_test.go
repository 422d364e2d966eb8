package outbox_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/outboxtest"
	"github.com/outboxd/outboxd/outbox/secretbox"
	"github.com/outboxd/outboxd/outbox/signing"
)

// pair is one (event, subscription) delivery that fan-out decided on.
type pair struct {
	EventID        string
	SubscriptionID string
}

func pairsOf(deliveries []outbox.FanoutDelivery) []pair {
	pairs := make([]pair, len(deliveries))
	for i, d := range deliveries {
		pairs[i] = pair{d.EventID, d.SubscriptionID}
	}
	return pairs
}

// publishN publishes n events and returns their seqs in publish order.
func publishN(ctx context.Context, t *testing.T, store *outbox.Store, n int) []int64 {
	t.Helper()
	seqs := make([]int64, n)
	for i := range seqs {
		seqs[i] = outboxtest.Event(ctx, t, store, &outboxtest.EventOpts{Payload: map[string]int{"i": i}}).Seq
	}
	return seqs
}

func TestEventFanout(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		ctx   context.Context
		store *outbox.Store

		agentSteps  *outbox.SubscriptionCreateResult // agent-1, agent.step.*
		orgAll      *outbox.SubscriptionCreateResult // org-1, *
		globalRuns  *outbox.SubscriptionCreateResult // global, agent.run.completed
		agentInOrg  *outbox.SubscriptionCreateResult // agent-2 in org-1, *, own retry schedule
		agentOrg2   *outbox.SubscriptionCreateResult // agent-1 in org-2, agent.step.completed
		disabledAll *outbox.SubscriptionCreateResult // global, *, disabled
		deleted     *outbox.SubscriptionCreateResult // global, *, deleted
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		ctx := context.Background()
		store := outboxtest.Store(t)
		b := &testBundle{
			ctx:         ctx,
			store:       store,
			agentSteps:  outboxtest.Subscription(ctx, t, store, &outboxtest.SubscriptionOpts{AgentID: "agent-1", EventTypes: []string{"agent.step.*"}}),
			orgAll:      outboxtest.Subscription(ctx, t, store, &outboxtest.SubscriptionOpts{OrganizationID: "org-1", EventTypes: []string{"*"}}),
			globalRuns:  outboxtest.Subscription(ctx, t, store, &outboxtest.SubscriptionOpts{EventTypes: []string{"agent.run.completed"}}),
			agentInOrg:  outboxtest.Subscription(ctx, t, store, &outboxtest.SubscriptionOpts{AgentID: "agent-2", OrganizationID: "org-1", RetrySchedule: outbox.RetrySchedule{time.Second, time.Minute}}),
			agentOrg2:   outboxtest.Subscription(ctx, t, store, &outboxtest.SubscriptionOpts{AgentID: "agent-1", OrganizationID: "org-2", EventTypes: []string{"agent.step.completed"}}),
			disabledAll: outboxtest.Subscription(ctx, t, store, nil),
			deleted:     outboxtest.Subscription(ctx, t, store, nil),
		}
		disabled, err := store.SubscriptionDisable(ctx, b.disabledAll.ID, "test")
		require.NoError(t, err)
		require.True(t, disabled)
		require.NoError(t, store.SubscriptionDelete(ctx, b.deleted.ID))
		return b
	}

	t.Run("MatchesExactly", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		event := func(eventType, agent, org string) *outbox.Event {
			return outboxtest.Event(b.ctx, t, b.store, &outboxtest.EventOpts{Type: eventType, AgentID: agent, OrganizationID: org})
		}
		stepA1Org1 := event("agent.step.completed", "agent-1", "org-1")
		runA2Org2 := event("agent.run.completed", "agent-2", "org-2")
		toolA2Org1 := event("agent.tool.attached", "agent-2", "org-1")
		messageA3 := event("agent.message.sent", "agent-3", "")
		stepperA1 := event("agent.stepper.done", "agent-1", "")         // agent.step.* is a prefix of words, not of characters
		stepA1Org2 := event("agent.step.completed", "agent-1", "org-2") // agent-1 alone and agent-1 in org-2
		stepStartA1Org2 := event("agent.step.started", "agent-1", "org-2")
		runNoScope := event("agent.run.completed", "", "")
		stepNoAgentOrg1 := event("agent.step.completed", "", "org-1")

		tx := begin(b.ctx, t, outboxtest.Pool(t))
		claim, err := b.store.EventClaimFanoutTx(b.ctx, tx, 100)
		require.NoError(t, err)
		require.Len(t, claim.Seqs, 9)
		deliveries := claim.Deliveries
		require.NoError(t, tx.Commit(b.ctx))

		want := []pair{
			{stepA1Org1.ID, b.agentSteps.ID},
			{stepA1Org1.ID, b.orgAll.ID},
			{runA2Org2.ID, b.globalRuns.ID},
			{toolA2Org1.ID, b.orgAll.ID},
			{toolA2Org1.ID, b.agentInOrg.ID},
			{stepA1Org2.ID, b.agentSteps.ID},
			{stepA1Org2.ID, b.agentOrg2.ID},
			{stepStartA1Org2.ID, b.agentSteps.ID},
			{runNoScope.ID, b.globalRuns.ID},
			{stepNoAgentOrg1.ID, b.orgAll.ID},
		}
		require.ElementsMatch(t, want, pairsOf(deliveries))
		for _, unmatched := range []*outbox.Event{messageA3, stepperA1} {
			for _, d := range deliveries {
				require.NotEqual(t, unmatched.ID, d.EventID, "%s matches nothing", unmatched.Type)
			}
		}

		// In event order, then subscription id; each carries the event's seq.
		seqOf := map[string]int64{}
		for _, e := range []*outbox.Event{stepA1Org1, runA2Org2, toolA2Org1, messageA3, stepperA1, stepA1Org2, stepStartA1Org2, runNoScope, stepNoAgentOrg1} {
			seqOf[e.ID] = e.Seq
		}
		require.True(t, slices.IsSortedFunc(deliveries, func(x, y outbox.FanoutDelivery) int {
			if x.EventSeq != y.EventSeq {
				return int(x.EventSeq - y.EventSeq)
			}
			if x.SubscriptionID < y.SubscriptionID {
				return -1
			}
			return 1
		}), "deliveries are in event order")
		for _, d := range deliveries {
			require.Equal(t, seqOf[d.EventID], d.EventSeq)
			require.NotEqual(t, b.disabledAll.ID, d.SubscriptionID, "disabled subscriptions get nothing")
			require.NotEqual(t, b.deleted.ID, d.SubscriptionID, "deleted subscriptions get nothing")
		}

		// Every claimed event is now marked dispatched and fanned out, matched or not.
		for _, e := range []*outbox.Event{stepA1Org1, messageA3, stepperA1} {
			got, err := b.store.EventGet(b.ctx, e.ID)
			require.NoError(t, err)
			require.NotNil(t, got.DispatchedAt)
			require.NotNil(t, got.FannedOutAt)
		}
	})

	t.Run("RetrySchedule", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		event := outboxtest.Event(b.ctx, t, b.store, &outboxtest.EventOpts{Type: "agent.step.completed", AgentID: "agent-2", OrganizationID: "org-1"})

		tx := begin(b.ctx, t, outboxtest.Pool(t))
		deliveries, err := b.store.EventFanoutTx(b.ctx, tx, []int64{event.Seq})
		require.NoError(t, err)
		require.NoError(t, tx.Commit(b.ctx))

		require.ElementsMatch(t, []pair{{event.ID, b.orgAll.ID}, {event.ID, b.agentInOrg.ID}}, pairsOf(deliveries))
		for _, d := range deliveries {
			switch d.SubscriptionID {
			case b.agentInOrg.ID:
				require.Equal(t, outbox.RetrySchedule{time.Second, time.Minute}, d.RetrySchedule)
			default:
				require.Nil(t, d.RetrySchedule, "no schedule of its own: the default")
			}
		}
	})

	t.Run("OnlyOnce", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		first := outboxtest.Event(b.ctx, t, b.store, &outboxtest.EventOpts{OrganizationID: "org-1"})
		second := outboxtest.Event(b.ctx, t, b.store, &outboxtest.EventOpts{OrganizationID: "org-1"})

		tx := begin(b.ctx, t, outboxtest.Pool(t))
		deliveries, err := b.store.EventFanoutTx(b.ctx, tx, []int64{first.Seq})
		require.NoError(t, err)
		require.Equal(t, []pair{{first.ID, b.orgAll.ID}}, pairsOf(deliveries))
		require.NoError(t, tx.Commit(b.ctx))

		// Again for the same seqs: already fanned out, nothing; the new one still fans out.
		tx = begin(b.ctx, t, outboxtest.Pool(t))
		deliveries, err = b.store.EventFanoutTx(b.ctx, tx, []int64{first.Seq})
		require.NoError(t, err)
		require.Empty(t, deliveries)
		deliveries, err = b.store.EventFanoutTx(b.ctx, tx, []int64{first.Seq, second.Seq})
		require.NoError(t, err)
		require.Equal(t, []pair{{second.ID, b.orgAll.ID}}, pairsOf(deliveries))
		require.NoError(t, tx.Commit(b.ctx))

		tx = begin(b.ctx, t, outboxtest.Pool(t))
		deliveries, err = b.store.EventFanoutTx(b.ctx, tx, []int64{first.Seq, second.Seq})
		require.NoError(t, err)
		require.Empty(t, deliveries)
	})

	t.Run("RolledBackFanoutCanBeRedone", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		event := outboxtest.Event(b.ctx, t, b.store, &outboxtest.EventOpts{OrganizationID: "org-1"})

		tx := begin(b.ctx, t, outboxtest.Pool(t))
		deliveries, err := b.store.EventFanoutTx(b.ctx, tx, []int64{event.Seq})
		require.NoError(t, err)
		require.Len(t, deliveries, 1)
		require.NoError(t, tx.Rollback(b.ctx))

		got, err := b.store.EventGet(b.ctx, event.ID)
		require.NoError(t, err)
		require.Nil(t, got.FannedOutAt)

		tx = begin(b.ctx, t, outboxtest.Pool(t))
		deliveries, err = b.store.EventFanoutTx(b.ctx, tx, []int64{event.Seq})
		require.NoError(t, err)
		require.Equal(t, []pair{{event.ID, b.orgAll.ID}}, pairsOf(deliveries))
	})

	t.Run("EmptyAndUnknownSeqs", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		tx := begin(b.ctx, t, outboxtest.Pool(t))
		for _, seqs := range [][]int64{nil, {}, {1 << 40}} {
			deliveries, err := b.store.EventFanoutTx(b.ctx, tx, seqs)
			require.NoError(t, err)
			require.Empty(t, deliveries)
		}
	})

	t.Run("NoSubscriptions", func(t *testing.T) {
		t.Parallel()

		ctx := context.Background()
		store := outboxtest.Store(t)
		event := outboxtest.Event(ctx, t, store, nil)
		tx := begin(ctx, t, outboxtest.Pool(t))
		deliveries, err := store.EventFanoutTx(ctx, tx, []int64{event.Seq})
		require.NoError(t, err)
		require.Empty(t, deliveries)
		require.NoError(t, tx.Commit(ctx))
		got, err := store.EventGet(ctx, event.ID)
		require.NoError(t, err)
		require.NotNil(t, got.FannedOutAt, "an event nobody wants is still done")
	})
}

func TestEventClaimBatch(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		ctx   context.Context
		store *outbox.Store
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		return &testBundle{ctx: context.Background(), store: outboxtest.Store(t)}
	}

	// Claims are compared as sets: which events are claimed is fixed (the oldest),
	// the order of the returned seqs is not.
	t.Run("OldestFirstUpToMax", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		seqs := publishN(b.ctx, t, b.store, 7)

		tx := begin(b.ctx, t, outboxtest.Pool(t))
		claimed, err := claimSeqs(b.ctx, b.store, tx, 3)
		require.NoError(t, err)
		require.ElementsMatch(t, seqs[:3], claimed)
		require.NoError(t, tx.Commit(b.ctx))

		tx = begin(b.ctx, t, outboxtest.Pool(t))
		claimed, err = claimSeqs(b.ctx, b.store, tx, 100)
		require.NoError(t, err)
		require.ElementsMatch(t, seqs[3:], claimed, "a later claim gets the rest")
		require.NoError(t, tx.Commit(b.ctx))

		tx = begin(b.ctx, t, outboxtest.Pool(t))
		claimed, err = claimSeqs(b.ctx, b.store, tx, 100)
		require.NoError(t, err)
		require.Empty(t, claimed)
	})

	t.Run("MarksDispatched", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		claimedEvent := outboxtest.Event(b.ctx, t, b.store, nil)
		waiting := outboxtest.Event(b.ctx, t, b.store, nil)

		tx := begin(b.ctx, t, outboxtest.Pool(t))
		claimed, err := claimSeqs(b.ctx, b.store, tx, 1)
		require.NoError(t, err)
		require.Equal(t, []int64{claimedEvent.Seq}, claimed)
		require.NoError(t, tx.Commit(b.ctx))

		got, err := b.store.EventGet(b.ctx, claimedEvent.ID)
		require.NoError(t, err)
		require.NotNil(t, got.DispatchedAt)
		require.Equal(t, got.DispatchedAt, got.FannedOutAt, "the claim fans out in the same transaction")
		got, err = b.store.EventGet(b.ctx, waiting.ID)
		require.NoError(t, err)
		require.Nil(t, got.DispatchedAt)
	})

	t.Run("RollbackReleasesTheClaim", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		seqs := publishN(b.ctx, t, b.store, 3)

		tx := begin(b.ctx, t, outboxtest.Pool(t))
		claimed, err := claimSeqs(b.ctx, b.store, tx, 10)
		require.NoError(t, err)
		require.ElementsMatch(t, seqs, claimed)
		require.NoError(t, tx.Rollback(b.ctx))

		tx = begin(b.ctx, t, outboxtest.Pool(t))
		claimed, err = claimSeqs(b.ctx, b.store, tx, 10)
		require.NoError(t, err)
		require.ElementsMatch(t, seqs, claimed)
	})

	t.Run("ConcurrentClaimsAreDisjoint", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		seqs := publishN(b.ctx, t, b.store, 10)
		pool := outboxtest.NewPool(t, 3)

		tx1 := begin(b.ctx, t, pool)
		claimed1, err := claimSeqs(b.ctx, b.store, tx1, 5)
		require.NoError(t, err)
		require.ElementsMatch(t, seqs[:5], claimed1)

		// tx1 still holds its rows: tx2 skips them rather than waiting. (Should it
		// wait, the lock timeout turns the wait into a failure rather than a hang.)
		tx2 := begin(b.ctx, t, pool)
		_, err = tx2.Exec(b.ctx, "SET LOCAL lock_timeout = '10s'")
		require.NoError(t, err)
		claimed2, err := claimSeqs(b.ctx, b.store, tx2, 10)
		require.NoError(t, err)
		require.ElementsMatch(t, seqs[5:], claimed2)

		tx3 := begin(b.ctx, t, pool)
		_, err = tx3.Exec(b.ctx, "SET LOCAL lock_timeout = '10s'")
		require.NoError(t, err)
		claimed3, err := claimSeqs(b.ctx, b.store, tx3, 10)
		require.NoError(t, err)
		require.Empty(t, claimed3, "everything is held")
		require.NoError(t, tx3.Rollback(b.ctx))

		// tx1 gives up its claim; tx2 keeps its own.
		require.NoError(t, tx1.Rollback(b.ctx))
		tx3 = begin(b.ctx, t, pool)
		claimed3, err = claimSeqs(b.ctx, b.store, tx3, 10)
		require.NoError(t, err)
		require.ElementsMatch(t, seqs[:5], claimed3)

		require.NoError(t, tx2.Commit(b.ctx))
		require.NoError(t, tx3.Commit(b.ctx))
		backlog, err := b.store.EventBacklog(b.ctx)
		require.NoError(t, err)
		require.Zero(t, backlog.Undispatched)
	})

	t.Run("LateCommitIsNeverSkipped", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		pool := outboxtest.NewPool(t, 3)

		txA := begin(b.ctx, t, pool)
		late, err := b.store.PublishTx(b.ctx, txA, &outbox.PublishParams{Type: "agent.step.completed"})
		require.NoError(t, err)
		early := outboxtest.Event(b.ctx, t, b.store, nil)
		require.Less(t, late.Seq, early.Seq, "the late event has the lower seq")

		tx := begin(b.ctx, t, pool)
		claimed, err := claimSeqs(b.ctx, b.store, tx, 10)
		require.NoError(t, err)
		require.Equal(t, []int64{early.Seq}, claimed)
		require.NoError(t, tx.Commit(b.ctx))

		require.NoError(t, txA.Commit(b.ctx))
		tx = begin(b.ctx, t, pool)
		claimed, err = claimSeqs(b.ctx, b.store, tx, 10)
		require.NoError(t, err)
		require.Equal(t, []int64{late.Seq}, claimed, "the event committed late is claimed after all")
		require.NoError(t, tx.Commit(b.ctx))
	})

	t.Run("ZeroMax", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		publishN(b.ctx, t, b.store, 2)
		tx := begin(b.ctx, t, outboxtest.Pool(t))
		claimed, err := claimSeqs(b.ctx, b.store, tx, 0)
		require.NoError(t, err)
		require.Empty(t, claimed)
	})
}

func TestEventBacklog(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	store := outboxtest.Store(t)

	backlog, err := store.EventBacklog(ctx)
	require.NoError(t, err)
	require.Zero(t, backlog.OldestAge)
	require.Zero(t, backlog.Undispatched)

	seqs := publishN(ctx, t, store, 5)
	backlog, err = store.EventBacklog(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 5, backlog.Undispatched)
	require.GreaterOrEqual(t, backlog.OldestAge, time.Duration(0))
	require.Less(t, backlog.OldestAge, time.Minute)

	tx := begin(ctx, t, outboxtest.Pool(t))
	claimed, err := claimSeqs(ctx, store, tx, 3)
	require.NoError(t, err)
	require.ElementsMatch(t, seqs[:3], claimed)
	require.NoError(t, tx.Commit(ctx))
	backlog, err = store.EventBacklog(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, backlog.Undispatched)

	// The oldest waiting event's age is the measure: a producer may backdate one.
	_, err = outboxtest.Pool(t).Exec(ctx, fmt.Sprintf("INSERT INTO %s.events (type, created_at) VALUES ('a.b', now() - interval '1 hour')", store.Schema()))
	require.NoError(t, err)
	backlog, err = store.EventBacklog(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 3, backlog.Undispatched)
	require.GreaterOrEqual(t, backlog.OldestAge, time.Hour)
	require.Less(t, backlog.OldestAge, time.Hour+time.Minute)

	tx = begin(ctx, t, outboxtest.Pool(t))
	_, err = claimSeqs(ctx, store, tx, 10)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	backlog, err = store.EventBacklog(ctx)
	require.NoError(t, err)
	require.Zero(t, backlog.Undispatched)
	require.Zero(t, backlog.OldestAge)
}

func TestDeliveries(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	store := outboxtest.Store(t)

	t.Run("ListEmpty", func(t *testing.T) {
		t.Parallel()

		for _, params := range []*outbox.DeliveryListParams{
			nil,
			{},
			{EventID: "evt_00000000000000000000000000000000"},
			{SubscriptionID: "sub_00000000000000000000000000000000"},
			{State: outbox.DeliveryPending, Before: 10, Limit: 5},
		} {
			deliveries, err := store.DeliveryList(ctx, params)
			require.NoError(t, err)
			require.NotNil(t, deliveries)
			require.Empty(t, deliveries)
		}
	})

	t.Run("GetUnknown", func(t *testing.T) {
		t.Parallel()

		for _, id := range []int64{1, 0, -1} {
			_, err := store.DeliveryGet(ctx, id)
			require.ErrorIs(t, err, outbox.ErrNotFound)
		}
	})
}

func TestParseDeliveryState(t *testing.T) {
	t.Parallel()

	tests := []struct {
		input string
		want  outbox.DeliveryState
	}{
		{"pending", outbox.DeliveryPending},
		{"delivering", outbox.DeliveryDelivering},
		{"retrying", outbox.DeliveryRetrying},
		{"delivered", outbox.DeliveryDelivered},
		{"dead", outbox.DeliveryDead},
		{"cancelled", outbox.DeliveryCancelled},
		{"", ""},
		{"Pending", ""},
		{"canceled", ""},
		{"completed", ""},
		{"discarded", ""},
		{" pending", ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.input), func(t *testing.T) {
			t.Parallel()

			got, err := outbox.ParseDeliveryState(tt.input)
			if tt.want != "" {
				require.NoError(t, err)
				require.Equal(t, tt.want, got)
				return
			}
			require.Error(t, err)
			require.Empty(t, got)
			require.Contains(t, err.Error(), fmt.Sprintf("unknown delivery state %q", tt.input))
			for _, state := range outbox.DeliveryStates {
				require.Contains(t, err.Error(), string(state), "the message lists every state")
			}
		})
	}

	t.Run("EveryStateParses", func(t *testing.T) {
		t.Parallel()

		require.Len(t, outbox.DeliveryStates, 6)
		for _, state := range outbox.DeliveryStates {
			got, err := outbox.ParseDeliveryState(string(state))
			require.NoError(t, err)
			require.Equal(t, state, got)
		}
	})
}

func TestDeliveryTarget(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		ctx   context.Context
		store *outbox.Store
		sub   *outbox.SubscriptionCreateResult
		event *outbox.Event
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		ctx := context.Background()
		store := outboxtest.Store(t)
		return &testBundle{
			ctx:   ctx,
			store: store,
			sub: outboxtest.Subscription(ctx, t, store, &outboxtest.SubscriptionOpts{
				URL:           "http://127.0.0.1:9/hooks",
				Headers:       map[string]string{"Authorization": "Bearer x"},
				RetrySchedule: outbox.RetrySchedule{time.Second},
			}),
			event: outboxtest.Event(ctx, t, store, &outboxtest.EventOpts{Type: "agent.step.completed", AgentID: "agent-1", OrganizationID: "org-1", Payload: map[string]string{"step_id": "s-1"}}),
		}
	}

	t.Run("LoadsEverything", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		target, err := b.store.DeliveryTarget(b.ctx, b.event.ID, b.sub.ID)
		require.NoError(t, err)
		require.Equal(t, b.sub.ID, target.SubscriptionID)
		require.Equal(t, "http://127.0.0.1:9/hooks", target.URL)
		require.True(t, target.Enabled)
		require.Equal(t, map[string]string{"Authorization": "Bearer x"}, target.Headers)
		require.Equal(t, outbox.RetrySchedule{time.Second}, target.RetrySchedule)
		require.Equal(t, []signing.Secret{b.sub.Secret}, target.Secrets)
		require.NotNil(t, target.Event)
		require.Equal(t, b.event.ID, target.Event.ID)
		require.Equal(t, b.event.Seq, target.Event.Seq)
		require.Equal(t, "agent.step.completed", target.Event.Type)
		require.Equal(t, "agent-1", target.Event.AgentID)
		require.Equal(t, "org-1", target.Event.OrganizationID)
		require.JSONEq(t, `{"step_id":"s-1"}`, string(target.Event.Payload))
		require.True(t, b.event.CreatedAt.Equal(target.Event.CreatedAt))
	})

	t.Run("DisabledSubscription", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		_, err := b.store.SubscriptionDisable(b.ctx, b.sub.ID, "test")
		require.NoError(t, err)
		target, err := b.store.DeliveryTarget(b.ctx, b.event.ID, b.sub.ID)
		require.NoError(t, err)
		require.False(t, target.Enabled)
	})

	t.Run("EventGone", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		target, err := b.store.DeliveryTarget(b.ctx, "evt_00000000000000000000000000000000", b.sub.ID)
		require.NoError(t, err)
		require.Nil(t, target.Event)
		require.Equal(t, b.sub.ID, target.SubscriptionID)
	})

	t.Run("SubscriptionGone", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		require.NoError(t, b.store.SubscriptionDelete(b.ctx, b.sub.ID))
		_, err := b.store.DeliveryTarget(b.ctx, b.event.ID, b.sub.ID)
		require.ErrorIs(t, err, outbox.ErrNotFound)
	})

	t.Run("ExpiredSecretsDoNotSign", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		_, err := outboxtest.Pool(t).Exec(b.ctx, fmt.Sprintf("UPDATE %s.subscription_secrets SET expires_at = now() - interval '1 second'", b.store.Schema()))
		require.NoError(t, err)
		target, err := b.store.DeliveryTarget(b.ctx, b.event.ID, b.sub.ID)
		require.NoError(t, err)
		require.Empty(t, target.Secrets)
	})

	t.Run("NeedsTheKey", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		keyless, err := outbox.NewStore(outboxtest.Pool(t), &outbox.StoreConfig{Schema: b.store.Schema()})
		require.NoError(t, err)
		_, err = keyless.DeliveryTarget(b.ctx, b.event.ID, b.sub.ID)
		require.ErrorIs(t, err, outbox.ErrNoEncryptionKey)

		otherKey, err := secretbox.NewKey(make([]byte, secretbox.KeySize))
		require.NoError(t, err)
		wrong, err := outbox.NewStore(outboxtest.Pool(t), &outbox.StoreConfig{Schema: b.store.Schema(), Keyring: secretbox.NewKeyring(otherKey)})
		require.NoError(t, err)
		_, err = wrong.DeliveryTarget(b.ctx, b.event.ID, b.sub.ID)
		require.Error(t, err)
		require.Contains(t, err.Error(), "not configured")
		require.Contains(t, err.Error(), b.sub.ID)
	})
}

// claimSeqs claims like the relay and returns the claimed events' positions.
func claimSeqs(ctx context.Context, store *outbox.Store, tx pgx.Tx, max int) ([]int64, error) {
	claim, err := store.EventClaimFanoutTx(ctx, tx, max)
	if err != nil {
		return nil, err
	}
	return claim.Seqs, nil
}
