package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/outboxd/outboxd/outbox"
)

// historyRows is how many deliveries the history scenario fills in.
const historyRows = 1_000_000

type historyQuery struct {
	name   string
	params outbox.DeliveryListParams
}

type historyResult struct {
	name   string
	median time.Duration
	max    time.Duration
}

// history fills a schema with about historyRows deliveries (and their events,
// by the shared set-based fill: 100 subscriptions of 10 organizations, 5,000
// agents, 3 event types) and times the first page (50) of the delivery history
// with each of the API's filters.
func history(ctx context.Context, env *benchEnv) ([]historyResult, error) {
	spec := fillSpec{hours: float64(historyRows) / 1_000 / 3600, rate: 1_000}
	if _, err := fill(ctx, env, spec); err != nil {
		return nil, err
	}
	return historyQueries(ctx, env)
}

// historyQueries times the first page of the delivery history with each filter
// over whatever fill the schema holds.
func historyQueries(ctx context.Context, env *benchEnv) ([]historyResult, error) {
	// An event id from the middle of the history, as a person would paste it.
	var eventID string
	if err := env.pool.QueryRow(ctx, fmt.Sprintf(`
		SELECT args ->> 'event_id' FROM %[1]s.river_job
		WHERE kind = 'outboxd.delivery' AND id >= (SELECT (min(id) + max(id)) / 2 FROM %[1]s.river_job WHERE kind = 'outboxd.delivery')
		ORDER BY id LIMIT 1`, env.schema)).Scan(&eventID); err != nil {
		return nil, fmt.Errorf("pick an event: %w", err)
	}
	queries := []historyQuery{
		{"newest, no filter", outbox.DeliveryListParams{}},
		{"subscription", outbox.DeliveryListParams{SubscriptionID: "sub_42"}},
		{"event", outbox.DeliveryListParams{EventID: eventID}},
		{"state = dead", outbox.DeliveryListParams{State: outbox.DeliveryDead}},
		{"organization", outbox.DeliveryListParams{OrganizationID: "org-3"}},
		{"agent", outbox.DeliveryListParams{AgentID: "agent-77"}},
		{"event type", outbox.DeliveryListParams{EventType: "agent.tool.attached"}},
		{"subscription + dead", outbox.DeliveryListParams{SubscriptionID: "sub_0", State: outbox.DeliveryDead}},
	}
	results := make([]historyResult, 0, len(queries))
	for _, q := range queries {
		var times []time.Duration
		for range 7 {
			params := q.params
			params.Limit = 50
			began := time.Now()
			page, err := env.store.DeliveryList(ctx, &params)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", q.name, err)
			}
			times = append(times, time.Since(began))
			if len(page) == 0 {
				return nil, fmt.Errorf("%s: empty page", q.name)
			}
		}
		slices.Sort(times)
		results = append(results, historyResult{name: q.name, median: times[len(times)/2], max: times[len(times)-1]})
		logf("  history: %-20s median %s", q.name, ms(times[len(times)/2]))
	}
	return results, nil
}

func historyMarkdown(results []historyResult) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("## Delivery history with %s deliveries", thousands(historyRows))
	w("")
	w("`GET /v1/deliveries` (`Store.DeliveryList`), first page of 50, newest first, over %s", thousands(historyRows))
	w("deliveries of 100 subscriptions in 10 organizations, 5,000 agents, 3 event types, one in")
	w("a thousand dead, one in 200 retrying (filled by set-based SQL as the daemon leaves them,")
	w("then VACUUM ANALYZE). Median and worst of 7 calls, measured once (the first run).")
	w("")
	w("| filter | median, ms | worst, ms |")
	w("|---|---|---|")
	for _, r := range results {
		w("| %s | %.1f | %.1f |", r.name, toMillis(r.median), toMillis(r.max))
	}
	w("")
	return b.String()
}
