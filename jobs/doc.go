// Package jobs owns everything that runs on River: the relay that moves committed
// events into River and, in the same transaction, turns them into one delivery job
// per matching subscription, the
// delivery worker that signs and POSTs them and records every attempt, the retry
// policy, metrics, and the Daemon that runs it all.
//
// # Data flow
//
//	producer tx ──INSERT──▶ outbox.events ──commit──▶ Relay claims a batch (SKIP LOCKED)
//	                                                    │ same tx: mark dispatched and
//	                                                    │ fanned out, insert one delivery
//	                                                    │ job per (event x subscription)
//	                                                    ▼
//	                                     delivery job ──signed POST──▶ receiver
//
// The claim, the match against subscriptions and the marking are one statement,
// and the deliveries are one COPY, so a claim costs two round trips and each event
// one row update. (Before schema version 10 a backlog went through fan-out jobs;
// the fan-out worker remains for jobs an older outboxd left queued.)
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
