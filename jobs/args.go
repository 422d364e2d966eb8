package jobs

import (
	"github.com/riverqueue/river"

	"github.com/outboxd/outboxd/outbox"
)

// Queues outboxd's River clients work.
const (
	QueueFanout   = "fanout"
	QueueDelivery = "delivery"
)

// Job kinds. They are part of the stored data (river_job.kind), so they never change.
const (
	KindFanout   = "outboxd.fanout"
	KindDelivery = outbox.DeliveryKind
)

// FanoutArgs is a batch of events the relay claimed, to be matched against
// subscriptions.
type FanoutArgs struct {
	// EventSeqs are the events' positions in the outbox (outbox.events.id).
	EventSeqs []int64 `json:"event_seqs"`
}

func (FanoutArgs) Kind() string { return KindFanout }

func (FanoutArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueFanout, MaxAttempts: 25}
}

// DeliveryArgs name one delivery: an event for a subscription. The job row that
// carries them is the delivery's record.
type DeliveryArgs struct {
	EventID        string `json:"event_id"`
	SubscriptionID string `json:"subscription_id"`

	// AgentID is the event's agent, for every delivery of an event that has one:
	// the delivery history's agent filter walks an index on it (migration 13).
	AgentID string `json:"agent_id,omitempty"`
	// Seq is set only for a subscription with ordering "agent": the event's outbox
	// position, which orders the line its agent names. (Not for every delivery:
	// each key in args costs an entry in River's GIN index.)
	Seq int64 `json:"seq,omitempty"`
}

func deliveryArgs(eventID, subscriptionID, agentID string, eventSeq int64, ordered bool) DeliveryArgs {
	args := DeliveryArgs{EventID: eventID, SubscriptionID: subscriptionID, AgentID: agentID}
	if ordered {
		args.Seq = eventSeq
	}
	return args
}

func (DeliveryArgs) Kind() string { return KindDelivery }

func (DeliveryArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueDelivery}
}
