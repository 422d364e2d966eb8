package outbox

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/outbox/internal/dbsqlc"
)

// This file holds ordered lines: a subscription with ordering "agent" delivers
// each agent's events one at a time, in outbox order.
//
// Each line is a set of River jobs. Only its head (the earliest delivery not yet
// ended) is ever due or running; the rest wait in River's "pending" state, which
// River never fetches. Every transaction that changes a line takes the lock of
// its agent first and ends by promoting the line's next delivery:
//
//   - fan-out inserts ordered deliveries as pending, then promotes the lines of
//     the batch's agents (an earlier event it fanned out may be what a line waited
//     for);
//   - the end of a head (delivered; dead, when the subscription skips dead
//     deliveries; cancelled because its event is gone) promotes the next;
//   - a retry or recovery puts ended deliveries back as pending and promotes;
//   - enabling or editing a subscription resumes its lines.
//
// A delivery that must wait is therefore never fetched, so nothing but River's
// own record of a run ever changes a job that ran: no run can be overtaken by the
// late record of an earlier one. A periodic sweep (OrderedSweep) promotes any line
// found waiting with nothing in progress, as a net under operators' manual changes.

// orderedKeys are the lock keys of agents' lines, sorted.
func (s *Store) orderedKeys(agents []string) []string {
	keys := make([]string, len(agents))
	for i, agent := range agents {
		keys[i] = s.schema + "\n" + agent
	}
	slices.Sort(keys)
	return keys
}

func (s *Store) orderedLock(ctx context.Context, exec dbsqlc.DBTX, agents []string) error {
	if len(agents) == 0 {
		return nil
	}
	return translateError("lock ordered lines", s.queries.OrderedLinesLock(ctx, exec, s.orderedKeys(agents)))
}

// OrderedFanoutLockTx locks the ordered lines of a batch's agents for the rest of
// tx and returns the agents, for OrderedPromoteTx once the batch's deliveries are
// inserted. It locks nothing and returns none when no enabled subscription
// orders its deliveries.
func (s *Store) OrderedFanoutLockTx(ctx context.Context, tx Executor, eventSeqs []int64) ([]string, error) {
	exec := s.on(tx)
	agents, err := s.queries.OrderedAgentsOfEvents(ctx, exec, eventSeqs)
	if err != nil {
		return nil, translateError("find ordered lines", err)
	}
	return agents, s.orderedLock(ctx, exec, agents)
}

// OrderedPromoteTx makes due the next delivery of every line of agents that has
// nothing due or running, treating finishingID (0: none) as ended. The caller
// holds the agents' locks (OrderedFanoutLockTx, or OrderedFinishTx). It returns
// how many deliveries it made due.
func (s *Store) OrderedPromoteTx(ctx context.Context, tx Executor, agents []string, finishingID int64) (int64, error) {
	if len(agents) == 0 {
		return 0, nil
	}
	row, err := s.queries.OrderedPromote(ctx, s.on(tx), &dbsqlc.OrderedPromoteParams{Agents: agents, FinishingID: finishingID})
	if err != nil {
		return 0, translateError("promote ordered lines", err)
	}
	return row.Promoted, nil
}

// OrderedLockTx locks agents' lines for the rest of tx.
func (s *Store) OrderedLockTx(ctx context.Context, tx Executor, agents []string) error {
	return s.orderedLock(ctx, s.on(tx), agents)
}

// OrderedFinishTx locks agent's lines and promotes them, with finishingID (the
// delivery whose run is ending) counted as ended. Call it in the transaction
// that ends the delivery, or after its last run, never before.
func (s *Store) OrderedFinishTx(ctx context.Context, tx Executor, agent string, finishingID int64) error {
	exec := s.on(tx)
	if err := s.orderedLock(ctx, exec, []string{agent}); err != nil {
		return err
	}
	_, err := s.OrderedPromoteTx(ctx, tx, []string{agent}, finishingID)
	return err
}

// OrderedLockJobsTx locks the lines of the ordered deliveries among ids and
// returns their agents (none when no delivery among ids is ordered).
func (s *Store) OrderedLockJobsTx(ctx context.Context, tx Executor, ids []int64) ([]string, error) {
	exec := s.on(tx)
	agents, err := s.queries.OrderedAgentsOfJobs(ctx, exec, ids)
	if err != nil {
		return nil, translateError("find ordered lines", err)
	}
	return agents, s.orderedLock(ctx, exec, agents)
}

// OrderedRequeueTx puts the ended ordered deliveries among ids (delivered, dead
// or cancelled) back in their lines, each with one more attempt if it had used
// them all, and promotes the lines: a line's earliest delivery goes first. The
// caller holds the lines' locks (OrderedLockJobsTx returned agents).
func (s *Store) OrderedRequeueTx(ctx context.Context, tx Executor, ids []int64, agents []string) error {
	if err := s.queries.OrderedRequeue(ctx, s.on(tx), ids); err != nil {
		return translateError("requeue ordered deliveries", err)
	}
	_, err := s.OrderedPromoteTx(ctx, tx, agents, 0)
	return err
}

// orderedResumeTx brings a subscription's lines up to date with its settings, in
// the transaction that changed them: a subscription that no longer orders lets
// every waiting delivery go; an enabled ordered one has its heads that wait on a
// timer (they found it disabled) made due and its lines promoted (on_dead may
// have changed to skip).
func (s *Store) orderedResumeTx(ctx context.Context, tx Executor, sub *Subscription) error {
	exec := s.on(tx)
	if sub.Ordering != OrderingAgent {
		_, err := s.queries.OrderedRelease(ctx, exec, sub.ID)
		return translateError("release ordered deliveries", err)
	}
	if !sub.Enabled {
		return nil
	}
	agents, err := s.queries.OrderedAgentsOfSubscription(ctx, exec, sub.ID)
	if err != nil {
		return translateError("find ordered lines", err)
	}
	if len(agents) == 0 {
		return nil
	}
	if err := s.orderedLock(ctx, exec, agents); err != nil {
		return err
	}
	if _, err := s.queries.OrderedResumeHeads(ctx, exec, sub.ID); err != nil {
		return translateError("resume ordered deliveries", err)
	}
	_, err = s.OrderedPromoteTx(ctx, tx, agents, 0)
	return err
}

// orderedSweepPage is how many agents' lines one sweep transaction promotes.
const orderedSweepPage = 500

// OrderedSweep promotes every line that has deliveries waiting and nothing in
// progress, and returns how many deliveries it made due. The transactions that
// change lines promote them themselves, so the sweep finds work only after a
// change made by hand (a job deleted or cancelled in the River UI, say), or once
// River's retention has removed a dead delivery that held a line.
func (s *Store) OrderedSweep(ctx context.Context) (int64, error) {
	var total int64
	var after *string
	for {
		agents, err := s.queries.OrderedAgentsWaiting(ctx, s.on(s.db), &dbsqlc.OrderedAgentsWaitingParams{AfterAgent: after, Max: orderedSweepPage})
		if err != nil {
			return total, translateError("find waiting ordered lines", err)
		}
		if len(agents) == 0 {
			return total, nil
		}
		err = s.inTx(ctx, func(tx pgx.Tx) error {
			if err := s.orderedLock(ctx, s.on(tx), agents); err != nil {
				return err
			}
			n, err := s.OrderedPromoteTx(ctx, tx, agents, 0)
			total += n
			return err
		})
		if err != nil {
			return total, fmt.Errorf("sweep ordered lines: %w", err)
		}
		if len(agents) < orderedSweepPage {
			return total, nil
		}
		after = &agents[len(agents)-1]
	}
}

// OrderedLinesWaiting reports whether any ordered line has a delivery waiting
// for its turn: only then can OrderedSweep find work.
func (s *Store) OrderedLinesWaiting(ctx context.Context) (bool, error) {
	waiting, err := s.queries.OrderedLinesWaitingExist(ctx, s.on(s.db))
	if err != nil {
		return false, translateError("look for waiting ordered lines", err)
	}
	return waiting, nil
}

// OrderedRetryTx retries an ordered delivery that has ended (delivered, dead or
// cancelled) through its line: it goes back as pending, with one more attempt if
// it had used them all, and is made due when its turn comes. It reports false,
// changing nothing, when id is not an ordered delivery or is the line's head
// (due or retrying: the caller makes it due now), and returns an ErrConflict
// when the delivery is still waiting for the ones ahead of it.
func (s *Store) OrderedRetryTx(ctx context.Context, tx Executor, id int64) (bool, error) {
	agents, err := s.OrderedLockJobsTx(ctx, tx, []int64{id})
	if err != nil || len(agents) == 0 {
		return false, err
	}
	state, err := s.queries.OrderedJobState(ctx, s.on(tx), id)
	if err != nil {
		return false, translateError("retry ordered delivery", err)
	}
	switch state {
	case "pending":
		return false, fmt.Errorf("%w: delivery %d waits for the deliveries ahead of it in its ordered line", ErrConflict, id)
	case "completed", "discarded", "cancelled":
		return true, s.OrderedRequeueTx(ctx, tx, []int64{id}, agents)
	}
	return false, nil
}
