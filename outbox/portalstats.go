package outbox

import (
	"context"
	"time"

	"github.com/outboxd/outboxd/outbox/internal/dbsqlc"
)

// This file holds the read models of the web portal and console: per
// subscription outcome counts and latency, an hourly chart, when event types
// were last seen, and the operators' view of the system. Each query is bounded
// (a sample of the newest rows through an index), so a page costs the same
// with a thousand deliveries in the log or a million.

// How many of a subscription's newest deliveries of the last 24 hours the
// figures look at: StatsSample for one endpoint (its page, the API, the CLI)
// and its chart, StatsSampleList for each endpoint of a list. Each costs about
// that many index entries and rows, whatever the length of the log; an
// endpoint busier than that shows the figures of its newest deliveries, and
// says so (SubscriptionStats.Sampled).
const (
	StatsSample     = 2_000
	StatsSampleList = 100
)

// SubscriptionStats sums up a subscription's deliveries of the last 24 hours
// (at most a sample of the newest).
type SubscriptionStats struct {
	SubscriptionID string `json:"subscription_id"`
	// Total counts the deliveries looked at; Sampled is true when there were
	// more in the 24 hours than the sample.
	Total     int64 `json:"total"`
	Sampled   bool  `json:"sampled"`
	Delivered int64 `json:"delivered"`
	Dead      int64 `json:"dead"`
	Retrying  int64 `json:"retrying"`
	// SuccessRate is Delivered out of the deliveries that were attempted and
	// are delivered, dead or retrying; nil when there were none.
	SuccessRate *float64 `json:"success_rate"`
	// P50MS is the median duration of the delivering attempt, in milliseconds;
	// 0 when nothing was delivered.
	P50MS float64 `json:"p50_ms"`
}

// SubscriptionStatsList returns the stats of each subscription, in the order
// given, from at most sample (StatsSample, StatsSampleList) of its newest
// deliveries of the last 24 hours.
func (s *Store) SubscriptionStatsList(ctx context.Context, ids []string, sample int) ([]*SubscriptionStats, error) {
	minID, err := s.JobIDAt(ctx, time.Now().Add(-24*time.Hour))
	if err != nil {
		return nil, err
	}
	rows, err := s.queries.SubscriptionStats(ctx, s.on(s.db), &dbsqlc.SubscriptionStatsParams{
		SubscriptionIds: ids, MinID: minID, Sample: int32(min(max(sample, 1), 100_000)), //nolint:gosec // bounded
	})
	if err != nil {
		return nil, translateError("subscription stats", err)
	}
	byID := make(map[string]*dbsqlc.SubscriptionStatsRow, len(rows))
	for _, row := range rows {
		byID[row.SubscriptionID] = row
	}
	out := make([]*SubscriptionStats, len(ids))
	for i, id := range ids {
		st := &SubscriptionStats{SubscriptionID: id}
		if row := byID[id]; row != nil {
			st.Total, st.Delivered, st.Dead, st.Retrying, st.P50MS = row.Total, row.Delivered, row.Dead, row.Retrying, row.P50Ms
			st.Sampled = row.Total >= int64(sample)
			if tried := row.Delivered + row.Dead + row.Retrying; tried > 0 {
				rate := float64(row.Delivered) / float64(tried)
				st.SuccessRate = &rate
			}
		}
		out[i] = st
	}
	return out, nil
}

// JobIDMargin widens the time bounds that JobIDAt turns into ids, for jobs
// whose transactions committed out of creation order.
const JobIDMargin = time.Minute

// JobIDAt returns an id below which every River job (a delivery) was created
// before at less JobIDMargin: index walks over deliveries stop there instead
// of reading the whole log, and keep their exact time filter.
func (s *Store) JobIDAt(ctx context.Context, at time.Time) (int64, error) {
	id, err := s.queries.JobIDAt(ctx, s.on(s.db), at.Add(-JobIDMargin))
	if err != nil {
		return 0, translateError("find jobs by time", err)
	}
	return id, nil
}

// HourlyOutcomes counts one hour's deliveries of a subscription by outcome.
type HourlyOutcomes struct {
	Hour      time.Time `json:"hour"`
	Delivered int64     `json:"delivered"`
	Failed    int64     `json:"failed"` // dead, or failed and retrying
	Cancelled int64     `json:"cancelled"`
	Pending   int64     `json:"pending"` // not attempted yet, or in flight
}

// SubscriptionHourly returns the 24 hours up to now, oldest first, each with
// the subscription's deliveries created in it by outcome (at most StatsSample
// newest in all). Hours without deliveries are there with zeros.
func (s *Store) SubscriptionHourly(ctx context.Context, subscriptionID string, now time.Time) ([]HourlyOutcomes, error) {
	minID, err := s.JobIDAt(ctx, now.Add(-24*time.Hour))
	if err != nil {
		return nil, err
	}
	rows, err := s.queries.SubscriptionHourly(ctx, s.on(s.db), &dbsqlc.SubscriptionHourlyParams{SubscriptionID: subscriptionID, MinID: minID, Sample: StatsSample})
	if err != nil {
		return nil, translateError("subscription chart", err)
	}
	last := now.UTC().Truncate(time.Hour)
	hours := make([]HourlyOutcomes, 24)
	for i := range hours {
		hours[i].Hour = last.Add(time.Duration(i-23) * time.Hour)
	}
	for _, row := range rows {
		i := 23 - int(last.Sub(row.Hour.UTC())/time.Hour)
		if i < 0 || i > 23 {
			continue
		}
		hours[i].Delivered, hours[i].Failed, hours[i].Cancelled, hours[i].Pending = row.Delivered, row.Failed, row.Cancelled, row.Pending
	}
	return hours, nil
}

// EventSample is how many of the newest events of the last 7 days (of every
// organization) EventTypesLastSeen looks at.
const EventSample = 20_000

// EventTypesLastSeen returns when each event type was last published for an
// organization (every organization when empty), among its EventSample newest
// events of the last 7 days.
func (s *Store) EventTypesLastSeen(ctx context.Context, organizationID string) (map[string]time.Time, error) {
	rows, err := s.queries.EventTypesLastSeen(ctx, s.on(s.db), &dbsqlc.EventTypesLastSeenParams{OrganizationID: nullable(organizationID), Sample: EventSample})
	if err != nil {
		return nil, translateError("event types last seen", err)
	}
	seen := make(map[string]time.Time, len(rows))
	for _, row := range rows {
		seen[row.Type] = row.LastSeen
	}
	return seen, nil
}

// DeliveryRates are deliveries per second over a recent window, by outcome.
type DeliveryRates struct {
	Window    time.Duration `json:"window"`
	Delivered float64       `json:"delivered_per_second"`
	Dead      float64       `json:"dead_per_second"`
	Cancelled float64       `json:"cancelled_per_second"`
	// Retrying counts the deliveries waiting for another attempt now.
	Retrying int64 `json:"retrying"`
}

// DeliveryRatesOver measures deliveries per second by outcome over the last
// window.
func (s *Store) DeliveryRatesOver(ctx context.Context, window time.Duration) (*DeliveryRates, error) {
	exec := s.on(s.db)
	row, err := s.queries.DeliveryRates(ctx, exec, window.Seconds())
	if err != nil {
		return nil, translateError("delivery rates", err)
	}
	retrying, err := s.queries.RetryingDeliveries(ctx, exec)
	if err != nil {
		return nil, translateError("count retrying deliveries", err)
	}
	seconds := window.Seconds()
	return &DeliveryRates{
		Window: window, Retrying: retrying,
		Delivered: float64(row.Delivered) / seconds, Dead: float64(row.Dead) / seconds, Cancelled: float64(row.Cancelled) / seconds,
	}, nil
}

// SubscriptionsTroubled lists subscriptions that are disabled, have an open
// circuit or are failing, disabled ones first, at most limit.
func (s *Store) SubscriptionsTroubled(ctx context.Context, limit int) ([]*Subscription, error) {
	rows, err := s.queries.SubscriptionsTroubled(ctx, s.on(s.db), int32(listLimit(limit))) //nolint:gosec // bounded by listLimit
	if err != nil {
		return nil, translateError("list troubled subscriptions", err)
	}
	out := make([]*Subscription, 0, len(rows))
	for _, row := range rows {
		sub, err := subscriptionFromRow(row)
		if err != nil {
			return nil, err
		}
		out = append(out, sub)
	}
	return out, nil
}
