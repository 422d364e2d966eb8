package jobs

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxd/outboxd/outbox"
)

// Metrics are the daemon's Prometheus instruments, all named outboxd_*.
type Metrics struct {
	EventsDispatched      prometheus.Counter
	RelayBatches          prometheus.Counter
	EventsFannedOut       prometheus.Counter
	DeliveriesCreated     prometheus.Counter
	Attempts              *prometheus.CounterVec // by outcome (success, failure) and status_class (2xx, 4xx, 5xx, or an error class)
	AttemptDuration       *prometheus.HistogramVec
	DeliveriesFinished    *prometheus.CounterVec // by state: delivered, dead, cancelled
	SubscriptionsDisabled *prometheus.CounterVec // by reason
	DeliveriesDeferred    *prometheus.CounterVec // by reason: in_flight, rate_limit, circuit, ordering
	CircuitsOpened        prometheus.Counter
	OperationalEvents     *prometheus.CounterVec // by type
	JobsTakenOver         prometheus.Counter
}

// NewMetrics creates the instruments and registers them with reg. A nil reg keeps
// them unregistered (for tests and embedders that do not export metrics).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		EventsDispatched: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "outboxd_events_dispatched_total",
			Help: "Events the relay claimed.",
		}),
		RelayBatches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "outboxd_relay_batches_total",
			Help: "Non-empty batches the relay claimed.",
		}),
		EventsFannedOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "outboxd_events_fanned_out_total",
			Help: "Events matched against subscriptions (by the relay's claims, or fan-out jobs an older outboxd queued).",
		}),
		DeliveriesCreated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "outboxd_deliveries_created_total",
			Help: "Deliveries (event x subscription) created.",
		}),
		Attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outboxd_delivery_attempts_total",
			Help: "Delivery attempts by outcome and HTTP status class or error class.",
		}, []string{"outcome", "status_class"}),
		AttemptDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "outboxd_delivery_attempt_duration_seconds",
			Help:    "Time from sending a delivery's request to reading its response.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"outcome"}),
		DeliveriesFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outboxd_deliveries_finished_total",
			Help: "Deliveries that reached a final state: delivered, dead (every attempt failed) or cancelled.",
		}, []string{"state"}),
		SubscriptionsDisabled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outboxd_subscriptions_disabled_total",
			Help: "Subscriptions the daemon disabled, by reason.",
		}, []string{"reason"}),
		DeliveriesDeferred: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outboxd_deliveries_deferred_total",
			Help: "Delivery runs put back without an attempt (none spent), by reason: in_flight, rate_limit, circuit, ordering.",
		}, []string{"reason"}),
		CircuitsOpened: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "outboxd_circuits_opened_total",
			Help: "Times a subscription's circuit breaker opened after failed attempts in a row.",
		}),
		OperationalEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outboxd_operational_events_total",
			Help: "outboxd.* events published, by type.",
		}, []string{"type"}),
		JobsTakenOver: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "outboxd_jobs_taken_over_total",
			Help: "Jobs that daemons whose heartbeat stopped were running, put back in the queue by this daemon.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.EventsDispatched, m.RelayBatches, m.EventsFannedOut, m.DeliveriesCreated,
			m.Attempts, m.AttemptDuration, m.DeliveriesFinished, m.SubscriptionsDisabled,
			m.DeliveriesDeferred, m.CircuitsOpened, m.OperationalEvents, m.JobsTakenOver)
	}
	return m
}

// BacklogCollector reports, at each scrape and from the database, the relay's
// backlog, River's jobs by queue and state, disabled subscriptions and secrets
// about to stop signing.
type BacklogCollector struct {
	store    *outbox.Store
	age      *prometheus.Desc
	count    *prometheus.Desc
	jobs     *prometheus.Desc
	disabled *prometheus.Desc
	expiring *prometheus.Desc
	timeout  time.Duration
}

// NewBacklogCollector returns a collector for store's backlog.
func NewBacklogCollector(store *outbox.Store) *BacklogCollector {
	return &BacklogCollector{
		store:   store,
		timeout: 2 * time.Second,
		age: prometheus.NewDesc("outboxd_oldest_undispatched_event_age_seconds",
			"Age of the oldest event not yet handed to a fan-out job; 0 when there is none.", nil, nil),
		count: prometheus.NewDesc("outboxd_undispatched_events",
			"Events not yet handed to a fan-out job (counted up to 100,000).", nil, nil),
		jobs: prometheus.NewDesc("outboxd_jobs",
			"River jobs by queue (fanout, delivery) and River state.", []string{"queue", "state"}, nil),
		disabled: prometheus.NewDesc("outboxd_subscriptions_disabled",
			"Subscriptions currently disabled (by an operator or automatically).", nil, nil),
		expiring: prometheus.NewDesc("outboxd_secrets_expiring_soon",
			"Signing secrets that stop signing within 24 hours (the old side of a rotation).", nil, nil),
	}
}

func (c *BacklogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.age
	ch <- c.count
	ch <- c.jobs
	ch <- c.disabled
	ch <- c.expiring
}

func (c *BacklogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	backlog, err := c.store.EventBacklog(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.age, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, backlog.OldestAge.Seconds())
	ch <- prometheus.MustNewConstMetric(c.count, prometheus.GaugeValue, float64(backlog.Undispatched))

	health, err := c.store.Health(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.jobs, err)
		return
	}
	for _, j := range health.Jobs {
		ch <- prometheus.MustNewConstMetric(c.jobs, prometheus.GaugeValue, float64(j.Jobs), j.Queue, j.State)
	}
	ch <- prometheus.MustNewConstMetric(c.disabled, prometheus.GaugeValue, float64(health.DisabledSubscriptions))
	ch <- prometheus.MustNewConstMetric(c.expiring, prometheus.GaugeValue, float64(health.SecretsExpiringSoon))
}
