package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/outboxd/outboxd/outbox"
)

func newDeliveriesCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "deliveries",
		Aliases: []string{"delivery"},
		Short:   "Inspect and retry deliveries: one per event and matching subscription",
	}
	cmd.AddCommand(newDeliveriesListCommand(a), newDeliveriesGetCommand(a), newDeliveriesRetryCommand(a))
	return cmd
}

func newDeliveriesListCommand(a *app) *cobra.Command {
	var (
		params outbox.DeliveryListParams
		paging pageFlags
		state  string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list [--event ID] [--subscription ID] [--state STATE] [--limit N] [--cursor CURSOR]",
		Short: "List deliveries, newest first",
		Long: `List deliveries, newest first. States: pending, delivering, retrying,
delivered, dead (every attempt failed) and cancelled.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if state != "" {
				s, err := outbox.ParseDeliveryState(state)
				if err != nil {
					return fmt.Errorf("--state: %w", err)
				}
				params.State = s
			}
			before, err := paging.int64Key()
			if err != nil {
				return err
			}
			params.Before, params.Limit = before, paging.fetch()
			store, pool, err := a.openStore(cmd.Context(), nil)
			if err != nil {
				return err
			}
			defer pool.Close()
			deliveries, err := store.DeliveryList(cmd.Context(), &params)
			if err != nil {
				return err
			}
			pg := pageOf(&paging, deliveries, func(d *outbox.Delivery) string { return strconv.FormatInt(d.ID, 10) })
			return printPage(a, cmd, pg, asJSON, "ID\tEVENT\tSUBSCRIPTION\tSTATE\tATTEMPTS\tLAST STATUS\tWHEN\tLAST ERROR", func(d *outbox.Delivery) string {
				status := "-"
				if d.LastStatusCode != nil {
					status = strconv.Itoa(*d.LastStatusCode)
				}
				return fmt.Sprintf("%d\t%s\t%s\t%s\t%d/%d\t%s\t%s\t%s", d.ID, d.EventID, d.SubscriptionID, d.State,
					d.Attempt, d.MaxAttempts, status, deliveryWhen(d), errorSummary(d.LastError, 80))
			})
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&params.EventID, "event", "", "only this event's deliveries (evt_…)")
	flags.StringVar(&params.SubscriptionID, "subscription", "", "only this subscription's deliveries (sub_…)")
	flags.StringVar(&state, "state", "", "only deliveries in this state")
	paging.register(flags, "deliveries")
	flags.BoolVar(&asJSON, "json", false, `print {"data": [...], "next_cursor": ...} as the API does, with every attempt`)
	return cmd
}

// deliveryWhen says when a delivery was delivered or will next be tried.
func deliveryWhen(d *outbox.Delivery) string {
	switch {
	case d.DeliveredAt != nil:
		return "delivered " + d.DeliveredAt.Local().Format(time.DateTime)
	case d.NextAttemptAt != nil:
		return "next " + d.NextAttemptAt.Local().Format(time.DateTime)
	case d.FinalizedAt != nil:
		return "ended " + d.FinalizedAt.Local().Format(time.DateTime)
	}
	return "-"
}

// attemptPrefix starts the error of a failed attempt: "POST <url>: ".
var attemptPrefix = regexp.MustCompile(`^POST \S+: `)

// errorSummary is the part of a delivery's error that says what went wrong, for
// a table: without the method and URL an attempt's error starts with (the
// subscription's URL), cut to n characters. `deliveries get` shows all of it.
func errorSummary(s string, n int) string {
	return truncate(attemptPrefix.ReplaceAllString(s, ""), n)
}

// oneLine keeps a message on one line of a table.
func oneLine(s string) string {
	return strings.ReplaceAll(s, "\n", " ")
}

func truncate(s string, n int) string {
	s = oneLine(s)
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}
