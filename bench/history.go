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

// history fills a schema with historyRows deliveries (and their events) spread
// over 100 subscriptions of 10 organizations, then times the first page (50) of
// the delivery history with each of the API's filters.
func history(ctx context.Context, env *benchEnv) ([]historyResult, error) {
	start := time.Now()
	if _, err := env.pool.Exec(ctx, fmt.Sprintf(`
		INSERT INTO %[1]s.subscriptions (id, url, organization_id)
		SELECT 'sub_' || g, 'https://example.com/' || g, 'org-' || (g %% 10) FROM generate_series(0, 99) AS g;
		-- History as the daemon leaves it, with the event ids the jobs below name:
		-- columns producers may not set, so the producer checks are off for the fill.
		ALTER TABLE %[1]s.events DISABLE TRIGGER events_validate;
		INSERT INTO %[1]s.events (id, event_id, type, agent_id, organization_id, payload, dispatched_at, fanned_out_at)
		SELECT nextval('%[1]s.events_id_seq'), 'evt_' || g, (ARRAY['agent.step.completed', 'agent.run.completed', 'agent.tool.attached'])[g %% 3 + 1],
		       'agent-' || (g %% 5000), 'org-' || (g %% 10), '{}', now(), now()
		FROM generate_series(1, %[2]d) AS g;
		ALTER TABLE %[1]s.events ENABLE TRIGGER events_validate;
		INSERT INTO %[1]s.river_job (kind, queue, args, state, attempt, max_attempts, created_at, scheduled_at, finalized_at, metadata)
		SELECT 'outboxd.delivery', 'delivery',
		       jsonb_build_object('event_id', 'evt_' || g, 'subscription_id', 'sub_' || (g %% 100)),
		       CASE WHEN g %% 1000 = 0 THEN 'discarded' ELSE 'completed' END::%[1]s.river_job_state, 1, 8,
		       now() - make_interval(secs => %[2]d - g), now(), now(), '{}'
		FROM generate_series(1, %[2]d) AS g;
		ANALYZE %[1]s.events; ANALYZE %[1]s.river_job; ANALYZE %[1]s.subscriptions;`, env.schema, historyRows)); err != nil {
		return nil, fmt.Errorf("fill history: %w", err)
	}
	logf("  history: %d deliveries filled in %s", historyRows, time.Since(start).Round(time.Second))
	queries := []historyQuery{
		{"newest, no filter", outbox.DeliveryListParams{}},
		{"subscription", outbox.DeliveryListParams{SubscriptionID: "sub_42"}},
		{"event", outbox.DeliveryListParams{EventID: "evt_123456"}},
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
	w("a thousand dead. Median and worst of 7 calls, measured once (the first run).")
	w("")
	w("| filter | median, ms | worst, ms |")
	w("|---|---|---|")
	for _, r := range results {
		w("| %s | %.1f | %.1f |", r.name, toMillis(r.median), toMillis(r.max))
	}
	w("")
	return b.String()
}
