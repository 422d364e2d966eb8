// Package jobs owns everything that runs on River: the relay that moves committed
// events into River, the fan-out (in the relay's claim, or a worker for a
// backlog) that turns them into one delivery job per matching subscription, the
// delivery worker that signs and POSTs them and records every attempt, the retry
// policy, metrics, and the Daemon that runs it all.
//
// # Data flow
//
//	producer tx ──INSERT──▶ outbox.events ──commit──▶ Relay claims a batch (SKIP LOCKED)
//	                                                    │ same tx: mark dispatched, then
//	                                  ┌─────────────────┴──────────────────┐
//	                  up to FanoutInlineMax events           a larger batch (a backlog)
//	                  fanned out in the claim itself         insert a fan-out job, which in
//	                                  │                      its own tx fans out and completes
//	                                  └─────────────────┬──────────────────┘
//	                                                    │ mark fanned out, insert one delivery
//	                                                    │ job per (event x subscription)
//	                                                    ▼
//	                                     delivery job ──signed POST──▶ receiver
//
// A small claim is fanned out in place because the trip through a fan-out job
// (insert, notify, fetch, complete) was a fifth of the commit-to-receipt latency
// at 1,000 events/s and most of the cost of each claim; a backlog still goes to
// fan-out jobs, which every daemon runs side by side.
//
// Each step commits its effect and its hand-off in one transaction, so a crash at
// any point loses nothing and creates no second set of deliveries; a delivery may be
// sent more than once (a crash between the receiver's 2xx and River recording it),
// which is why webhook-id is stable.
//
// # Delivery records
//
// A delivery is a River job of kind outboxd.delivery; its row is the record. River
// keeps state, attempt, errors, next attempt (scheduled_at) and when it ended
// (finalized_at); the worker appends an outbox.Attempt per try to the row's
// metadata under "attempts". outbox.deliveries presents it to SQL users.
package jobs
