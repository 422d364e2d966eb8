package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/outboxd/outboxd/outbox"
)

// This file holds the operators' view of the whole system: the console's home
// page, and GET /v1/system, which answers the same for scripts.

// LettaStatus is what the console shows of the Letta triggers.
type LettaStatus struct {
	Installed  bool                  `json:"installed"`
	ErrorCount int64                 `json:"error_count"`
	Recent     []LettaTriggerFailure `json:"recent_errors"`
}

// LettaTriggerFailure is one error a Letta trigger recorded instead of failing
// Letta's write.
type LettaTriggerFailure struct {
	At        time.Time `json:"at"`
	Table     string    `json:"table"`
	Operation string    `json:"operation"`
	Message   string    `json:"message"`
}

// systemHealth is the console's home page and GET /v1/system.
type systemHealth struct {
	Backlog struct {
		Undispatched     int64   `json:"undispatched"`
		OldestAgeSeconds float64 `json:"oldest_age_seconds"`
	} `json:"relay_backlog"`
	Rates          *outbox.DeliveryRates   `json:"deliveries"`
	Jobs           []outbox.JobCount       `json:"jobs"`
	Troubled       []*outbox.Subscription  `json:"troubled_subscriptions"`
	Daemons        []*outbox.Daemon        `json:"daemons"`
	Letta          *LettaStatus            `json:"letta,omitempty"`
	LettaError     string                  `json:"-"`
	PortalSessions []*outbox.PortalSession `json:"portal_sessions"`
}

// rateWindow is the window of the deliveries-per-second figures.
const rateWindow = time.Minute

func (a *api) system(ctx context.Context, letta func(context.Context) (*LettaStatus, error)) (*systemHealth, error) {
	h := &systemHealth{}
	backlog, err := a.store.EventBacklog(ctx)
	if err != nil {
		return nil, err
	}
	h.Backlog.Undispatched, h.Backlog.OldestAgeSeconds = backlog.Undispatched, backlog.OldestAge.Seconds()
	if h.Rates, err = a.store.DeliveryRatesOver(ctx, rateWindow); err != nil {
		return nil, err
	}
	if h.Jobs, err = a.store.JobCountsUnfinished(ctx); err != nil {
		return nil, err
	}
	if h.Troubled, err = a.store.SubscriptionsTroubled(ctx, 100); err != nil {
		return nil, err
	}
	if h.Daemons, err = a.store.DaemonList(ctx); err != nil {
		return nil, err
	}
	if h.PortalSessions, err = a.store.PortalSessionList(ctx, &outbox.PortalSessionListParams{Limit: 20}); err != nil {
		return nil, err
	}
	if letta != nil {
		if h.Letta, err = letta(ctx); err != nil {
			h.Letta, h.LettaError = nil, err.Error()
		}
	}
	return h, nil
}

func (web *webApp) consoleHome(w http.ResponseWriter, r *http.Request) {
	h, err := web.api.system(r.Context(), web.letta)
	if err != nil {
		web.fail(w, r, err)
		return
	}
	web.render(w, r, http.StatusOK, "console", "System", h)
}

// systemGet is GET /v1/system, for admins.
func (a *api) systemGet(w http.ResponseWriter, r *http.Request) {
	if !principalFrom(r.Context()).admin {
		writeProblem(w, http.StatusForbidden, "this needs an admin token")
		return
	}
	h, err := a.system(r.Context(), a.letta)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, a.logger, http.StatusOK, h)
}
