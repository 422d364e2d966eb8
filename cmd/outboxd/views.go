package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/outboxd/outboxd/outbox"
)

// This file holds the CLI's side of the portal's read-only views: an endpoint's
// last 24 hours, the event catalog and the operators' system page.

func newSubscriptionsStatsCommand(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "stats ID",
		Short: "A subscription's last 24 hours: outcomes, success rate, median latency, deliveries per hour",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, pool, err := a.openStore(cmd.Context(), nil)
			if err != nil {
				return err
			}
			defer pool.Close()
			if _, err := store.SubscriptionGet(cmd.Context(), args[0]); err != nil {
				return fmt.Errorf("subscription %s: %w", args[0], err)
			}
			stats, err := store.SubscriptionStatsList(cmd.Context(), args, outbox.StatsSample)
			if err != nil {
				return err
			}
			hourly, err := store.SubscriptionHourly(cmd.Context(), args[0], time.Now())
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(a.stdout).Encode(struct {
					*outbox.SubscriptionStats
					Hourly []outbox.HourlyOutcomes `json:"hourly"`
				}{stats[0], hourly})
			}
			st := stats[0]
			rate := "-"
			if st.SuccessRate != nil {
				rate = fmt.Sprintf("%.1f%%", *st.SuccessRate*100)
			}
			fmt.Fprintf(a.stdout, "last 24 h: %d deliveries, %d delivered, %d dead, %d retrying; success %s; p50 %.1f ms\n",
				st.Total, st.Delivered, st.Dead, st.Retrying, rate, st.P50MS)
			w := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "HOUR (UTC)\tDELIVERED\tFAILED\tPENDING\tCANCELLED")
			for _, h := range hourly {
				if h.Delivered+h.Failed+h.Pending+h.Cancelled > 0 {
					fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\n", h.Hour.UTC().Format("2006-01-02 15:04"), h.Delivered, h.Failed, h.Pending, h.Cancelled)
				}
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the figures and the 24 hours as JSON")
	return cmd
}

func newEventTypesCommand(a *app) *cobra.Command {
	var (
		org    string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "types [--org ORGANIZATION]",
		Short: "The event catalog: every type outboxd produces, and when it was last published",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			store, pool, err := a.openStore(cmd.Context(), nil)
			if err != nil {
				return err
			}
			defer pool.Close()
			seen, err := store.EventTypesLastSeen(cmd.Context(), org)
			if err != nil {
				return err
			}
			type entry struct {
				outbox.EventTypeInfo
				LastSeen *time.Time `json:"last_seen"`
			}
			entries := make([]entry, len(outbox.EventCatalog))
			for i, info := range outbox.EventCatalog {
				entries[i].EventTypeInfo = info
				if t, ok := seen[info.Type]; ok {
					entries[i].LastSeen = &t
				}
			}
			if asJSON {
				return json.NewEncoder(a.stdout).Encode(map[string]any{"data": entries})
			}
			w := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "TYPE\tLAST SEEN\tDESCRIPTION")
			for _, e := range entries {
				fmt.Fprintf(w, "%s\t%s\t%s\n", e.Type, timeOrDash(e.LastSeen), e.Description)
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&org, "org", "", "when this organization last published each type (default: any)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the catalog with descriptions and examples as JSON")
	return cmd
}

func newSystemCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "system",
		Short: "The operators' view: relay backlog, delivery rates, troubled subscriptions, daemons",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			store, pool, err := a.openStore(ctx, nil)
			if err != nil {
				return err
			}
			defer pool.Close()
			backlog, err := store.EventBacklog(ctx)
			if err != nil {
				return err
			}
			rates, err := store.DeliveryRatesOver(ctx, time.Minute)
			if err != nil {
				return err
			}
			troubled, err := store.SubscriptionsTroubled(ctx, 100)
			if err != nil {
				return err
			}
			daemons, err := store.DaemonList(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "relay backlog: %d events, oldest waiting %s\n", backlog.Undispatched, backlog.OldestAge.Round(time.Millisecond))
			fmt.Fprintf(a.stdout, "last minute: %.2f delivered/s, %.2f dead/s, %.2f cancelled/s; %d retrying now\n",
				rates.Delivered, rates.Dead, rates.Cancelled, rates.Retrying)
			fmt.Fprintf(a.stdout, "\nsubscriptions needing attention: %d\n", len(troubled))
			w := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			for _, s := range troubled {
				state := "failing"
				switch {
				case !s.Enabled:
					state = "disabled: " + s.DisabledReason
				case s.CircuitOpenUntil != nil:
					state = "circuit open until " + s.CircuitOpenUntil.Local().Format(time.DateTime)
				}
				fmt.Fprintf(w, "  %s\t%s\t%s\t%s\n", s.ID, orDash(s.OrganizationID), s.URL, state)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "\ndaemons: %d\n", len(daemons))
			w = tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			for _, d := range daemons {
				state := "running, heartbeat " + time.Since(d.HeartbeatAt).Round(time.Second).String() + " ago"
				if d.StoppedAt != nil {
					state = "stopped: " + d.StopReason
				}
				fmt.Fprintf(w, "  %s\t%s (%d)\t%s\n", d.ID, d.Hostname, d.PID, state)
			}
			return w.Flush()
		},
	}
}
