package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"time"

	"github.com/outboxd/outboxd/outbox/httpapi"
)

// portalPageRuns is how many times each portal page is loaded.
const portalPageRuns = 7

// portalPage is one page's load times: the handler's time from request to the
// last byte written, with nothing between (no network, no browser).
type portalPage struct {
	name           string
	median, worst  time.Duration
	status, length int
}

// portalPages loads the tenant portal's and the operator console's main pages
// over whatever fill the schema holds (the history scenario's 1,000,000
// deliveries), signed in as one of the fill's organizations (a tenth of the
// deliveries) and as an admin, through the same handler outboxd run serves.
func portalPages(ctx context.Context, env *benchEnv) ([]portalPage, error) {
	const adminToken = "bench-admin-token-0123456789abcdef"
	handler := httpapi.NewHandler(&httpapi.Config{Store: env.store, AdminTokens: []string{adminToken}})
	tenant, err := httpapi.PortalSessionCookie(ctx, env.store, "org-1", "")
	if err != nil {
		return nil, fmt.Errorf("portal session: %w", err)
	}
	admin, err := httpapi.AdminSessionCookie(ctx, env.store, adminToken)
	if err != nil {
		return nil, fmt.Errorf("console session: %w", err)
	}
	var deliveryID int64
	if err := env.pool.QueryRow(ctx, fmt.Sprintf(`
		SELECT j.id FROM %[1]s.river_job AS j
		WHERE j.kind = 'outboxd.delivery' AND j.args ->> 'subscription_id' = 'sub_1'
		ORDER BY j.id DESC LIMIT 1`, env.schema)).Scan(&deliveryID); err != nil {
		return nil, fmt.Errorf("pick a delivery: %w", err)
	}
	pages := []struct {
		name, path string
		cookie     *http.Cookie
	}{
		{"portal: endpoints (24 h success rate, p50)", "/portal/endpoints", tenant},
		{"portal: one endpoint (chart, recent deliveries)", "/portal/endpoints/sub_1", tenant},
		{"portal: delivery log", "/portal/deliveries", tenant},
		{"portal: delivery log, dead", "/portal/deliveries?state=dead", tenant},
		{"portal: delivery log, one endpoint", "/portal/deliveries?endpoint=sub_1", tenant},
		{"portal: one delivery (attempts)", fmt.Sprintf("/portal/deliveries/%d", deliveryID), tenant},
		{"portal: event catalog (last seen)", "/portal/events", tenant},
		{"console: health", "/console/", admin},
		{"console: endpoints", "/console/endpoints", admin},
		{"console: delivery log", "/console/deliveries", admin},
	}
	var out []portalPage
	for _, page := range pages {
		times := make([]time.Duration, 0, portalPageRuns)
		var last *httptest.ResponseRecorder
		for range portalPageRuns {
			req := httptest.NewRequestWithContext(ctx, http.MethodGet, page.path, nil)
			req.AddCookie(page.cookie)
			rec := httptest.NewRecorder()
			began := time.Now()
			handler.ServeHTTP(rec, req)
			times = append(times, time.Since(began))
			last = rec
		}
		if last.Code != http.StatusOK {
			return nil, fmt.Errorf("%s: %s answered %d: %.200s", page.name, page.path, last.Code, strings.TrimSpace(last.Body.String()))
		}
		slices.Sort(times)
		out = append(out, portalPage{name: page.name, median: times[len(times)/2], worst: times[len(times)-1], status: last.Code, length: last.Body.Len()})
	}
	return out, nil
}

func portalMarkdown(pages []portalPage) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("## Portal page loads with %s deliveries", thousands(historyRows))
	w("")
	w("The tenant portal (`/portal/`, signed in as one of the 10 organizations, so a tenth of the")
	w("deliveries are its own) and the operator console (`/console/`, every organization), over the")
	w("history scenario's fill, loaded through the handler `outboxd run` serves, with no network in")
	w("between: the server's time from request to the last byte. Median and worst of %d loads,", portalPageRuns)
	w("measured once (the first run). Target: every page under 100 ms.")
	w("")
	w("| page | median, ms | worst, ms | size, KiB |")
	w("|---|---|---|---|")
	for _, p := range pages {
		w("| %s | %.1f | %.1f | %.0f |", p.name, toMillis(p.median), toMillis(p.worst), float64(p.length)/1024)
	}
	w("")
	return b.String()
}
