package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/outboxd/outboxd/jobs"
	"github.com/outboxd/outboxd/outbox"
)

// openOperations returns the store and the job operations (retry, test, recover)
// of an unstarted daemon: they insert and update jobs without working any.
func (a *app) openOperations(ctx context.Context, allowPrivateTargets string) (*outbox.Store, *jobs.Operations, *pgxpool.Pool, error) {
	store, pool, err := a.openStore(ctx, &storeOpts{allowPrivateTargets: allowPrivateTargets})
	if err != nil {
		return nil, nil, nil, err
	}
	g, err := guard(allowPrivateTargets)
	if err != nil {
		pool.Close()
		return nil, nil, nil, err
	}
	daemon, err := jobs.NewDaemon(pool, &jobs.Config{Store: store, Guard: g})
	if err != nil {
		pool.Close()
		return nil, nil, nil, err
	}
	return store, daemon.Operations(), pool, nil
}

func parseDeliveryID(arg string) (int64, error) {
	id, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("delivery id %q: a positive number, as in `outboxd deliveries list`", arg)
	}
	return id, nil
}

func newDeliveriesGetCommand(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "get ID",
		Short: "Show a delivery with every attempt",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseDeliveryID(args[0])
			if err != nil {
				return err
			}
			store, pool, err := a.openStore(cmd.Context(), nil)
			if err != nil {
				return err
			}
			defer pool.Close()
			d, err := store.DeliveryGet(cmd.Context(), id)
			if err != nil {
				return fmt.Errorf("delivery %d: %w", id, err)
			}
			if asJSON {
				return json.NewEncoder(a.stdout).Encode(d)
			}
			printDelivery(a, d)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printDelivery shows a delivery and its attempts, with their errors in full
// (the last column, so a long one does not push the others apart).
func printDelivery(a *app, d *outbox.Delivery) {
	fmt.Fprintf(a.stdout, "delivery %d: %s, attempt %d of %d\n  event %s → subscription %s\n  %s\n",
		d.ID, d.State, d.Attempt, d.MaxAttempts, d.EventID, d.SubscriptionID, deliveryWhen(d))
	if d.LastError != "" {
		fmt.Fprintf(a.stdout, "  last error: %s\n", oneLine(d.LastError))
	}
	w := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "  ATTEMPT\tAT\tSTATUS\tDURATION\tRESPONSE\tERROR")
	for _, at := range d.Attempts {
		status := at.ErrorClass
		if at.StatusCode > 0 {
			status = strconv.Itoa(at.StatusCode)
		}
		fmt.Fprintf(w, "  %d\t%s\t%s\t%.0f ms\t%s\t%s\n", at.Attempt, at.At.Local().Format(time.DateTime), status,
			at.DurationMS, orDash(truncate(at.Response, 40)), orDash(oneLine(at.Error)))
	}
	_ = w.Flush()
}

func newDeliveriesRetryCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "retry ID",
		Short: "Make a delivery due now (a dead one gets one more attempt; a delivered one is sent again)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseDeliveryID(args[0])
			if err != nil {
				return err
			}
			_, ops, pool, err := a.openOperations(cmd.Context(), "")
			if err != nil {
				return err
			}
			defer pool.Close()
			d, err := ops.DeliveryRetry(cmd.Context(), id)
			if err != nil {
				return fmt.Errorf("delivery %d: %w", id, err)
			}
			fmt.Fprintf(a.stdout, "delivery %d is due now (attempt %d of %d); a running daemon sends it\n", d.ID, d.Attempt+1, d.MaxAttempts)
			return nil
		},
	}
	return cmd
}

func newRecoverCommand(a *app) *cobra.Command {
	var (
		subscription string
		since, until string
		noWait       bool
		asJSON       bool
	)
	cmd := &cobra.Command{
		Use:   "recover --subscription ID --since TIME [--until TIME]",
		Short: "Re-deliver what a subscription missed in a time window",
		Long: `Re-deliver what a subscription missed in [--since, --until) (--until defaults to
now): every delivery that ended dead, or cancelled because the subscription was
disabled, and every matching event published while it was disabled. Enable the
subscription first (subscriptions enable ID). The recovery runs in the background on the daemons, with
no cap; this command follows its progress until it ends (--no-wait to return at once).
Times are RFC 3339 (2026-01-02T15:04:05Z) or a duration ago (2h).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if subscription == "" {
				return fmt.Errorf("--subscription is required")
			}
			now := time.Now()
			from, err := parseTimeOrAgo(since, now)
			if err != nil {
				return fmt.Errorf("--since: %w", err)
			}
			to := now
			if until != "" {
				if to, err = parseTimeOrAgo(until, now); err != nil {
					return fmt.Errorf("--until: %w", err)
				}
			}
			_, ops, pool, err := a.openOperations(ctx, "")
			if err != nil {
				return err
			}
			defer pool.Close()
			recovery, err := ops.RecoveryStart(ctx, subscription, from, to)
			if err != nil {
				return err
			}
			if !asJSON {
				fmt.Fprintf(a.stdout, "recovery %d: re-delivering what %s missed from %s to %s\n", recovery.ID, subscription,
					from.Local().Format(time.DateTime), to.Local().Format(time.DateTime))
			}
			last := int64(-1)
			for !noWait && recovery.State != "completed" && recovery.State != "failed" {
				if !asJSON && recovery.Retried+recovery.Created != last {
					fmt.Fprintf(a.stdout, "  %s: %d retried, %d missed events queued so far\n", recovery.State, recovery.Retried, recovery.Created)
					last = recovery.Retried + recovery.Created
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(500 * time.Millisecond):
				}
				if recovery, err = ops.RecoveryGet(ctx, recovery.ID); err != nil {
					return err
				}
			}
			if asJSON {
				return json.NewEncoder(a.stdout).Encode(recovery)
			}
			switch recovery.State {
			case "completed":
				fmt.Fprintf(a.stdout, "recovery %d done: %d dead or cancelled deliveries retried, %d missed events queued\n", recovery.ID, recovery.Retried, recovery.Created)
			case "failed":
				return fmt.Errorf("recovery %d failed after %d retried: %s", recovery.ID, recovery.Retried, recovery.Error)
			default:
				fmt.Fprintf(a.stdout, "recovery %d is %s; follow it with GET /v1/recoveries/%d or the River UI\n", recovery.ID, recovery.State, recovery.ID)
			}
			return nil
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&subscription, "subscription", "", "the subscription (sub_…)")
	flags.StringVar(&since, "since", "", "start of the window: RFC 3339 time or a duration ago like 24h")
	flags.StringVar(&until, "until", "", "end of the window (default now)")
	flags.BoolVar(&noWait, "no-wait", false, "start the recovery and return")
	flags.BoolVar(&asJSON, "json", false, "print the final recovery as JSON")
	return cmd
}

// parseTimeOrAgo reads an RFC 3339 time or a duration before now.
func parseTimeOrAgo(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, fmt.Errorf("required")
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration like 2h", s)
}

func newSubscriptionsEnableCommand(a *app, enable bool) *cobra.Command {
	use, short := "enable ID", "Enable a subscription (and clear why it was disabled)"
	if !enable {
		use, short = "disable ID", "Disable a subscription: its pending deliveries are cancelled when they come up"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, pool, err := a.openStore(cmd.Context(), nil)
			if err != nil {
				return err
			}
			defer pool.Close()
			sub, err := store.SubscriptionUpdate(cmd.Context(), args[0], &outbox.SubscriptionUpdateParams{Enabled: &enable})
			if err != nil {
				return fmt.Errorf("subscription %s: %w", args[0], err)
			}
			state := "enabled"
			if !sub.Enabled {
				state = "disabled"
			}
			fmt.Fprintf(a.stdout, "subscription %s is %s\n", sub.ID, state)
			return nil
		},
	}
}

func newSubscriptionsTestCommand(a *app) *cobra.Command {
	var (
		allowPrivate string
		asJSON       bool
	)
	cmd := &cobra.Command{
		Use:   "test ID",
		Short: "Send a signed webhook.test event to a subscription now and show the outcome",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, ops, pool, err := a.openOperations(cmd.Context(), allowPrivate)
			if err != nil {
				return err
			}
			defer pool.Close()
			attempt, err := ops.SubscriptionTest(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("subscription %s: %w", args[0], err)
			}
			if asJSON {
				return json.NewEncoder(a.stdout).Encode(attempt)
			}
			if attempt.StatusCode >= 200 && attempt.StatusCode < 300 {
				fmt.Fprintf(a.stdout, "delivered: %d in %.0f ms\n", attempt.StatusCode, attempt.DurationMS)
				return nil
			}
			if attempt.StatusCode > 0 {
				return fmt.Errorf("the receiver answered %d in %.0f ms: %s", attempt.StatusCode, attempt.DurationMS, truncate(attempt.Response, 200))
			}
			return fmt.Errorf("not delivered (%s): %s", attempt.ErrorClass, attempt.Error)
		},
	}
	cmd.Flags().StringVar(&allowPrivate, "allow-private-targets", "", "CIDR prefixes the test may reach although private or loopback")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the attempt as JSON")
	a.bindEnv(cmd.Flags(), "allow-private-targets", "OUTBOXD_ALLOW_PRIVATE_TARGETS")
	return cmd
}

func newEventsCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "events",
		Aliases: []string{"event"},
		Short:   "Inspect published events",
	}
	var (
		params outbox.EventListParams
		paging pageFlags
		asJSON bool
	)
	list := &cobra.Command{
		Use:   "list [--agent ID] [--org ID] [--type TYPE] [--limit N] [--cursor CURSOR]",
		Short: "List events, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
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
			events, err := store.EventList(cmd.Context(), &params)
			if err != nil {
				return err
			}
			pg := pageOf(&paging, events, func(e *outbox.Event) string { return strconv.FormatInt(e.Seq, 10) })
			return printPage(a, cmd, pg, asJSON, "ID\tTYPE\tAGENT\tORGANIZATION\tCREATED\tDISPATCHED", func(e *outbox.Event) string {
				dispatched := "pending"
				if e.DispatchedAt != nil {
					dispatched = e.DispatchedAt.Local().Format(time.DateTime)
				}
				return strings.Join([]string{e.ID, e.Type, orDash(e.AgentID), orDash(e.OrganizationID), e.CreatedAt.Local().Format(time.DateTime), dispatched}, "\t")
			})
		},
	}
	flags := list.Flags()
	flags.StringVar(&params.AgentID, "agent", "", "only this agent's events")
	flags.StringVar(&params.OrganizationID, "org", "", "only this organization's events")
	flags.StringVar(&params.Type, "type", "", "only events of this type")
	paging.register(flags, "events")
	flags.BoolVar(&asJSON, "json", false, `print {"data": [...], "next_cursor": ...}, as the API does`)

	var getJSON bool
	get := &cobra.Command{
		Use:   "get ID",
		Short: "Show an event and its deliveries",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, pool, err := a.openStore(cmd.Context(), nil)
			if err != nil {
				return err
			}
			defer pool.Close()
			event, err := store.EventGet(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("event %s: %w", args[0], err)
			}
			deliveries, err := store.DeliveryList(cmd.Context(), &outbox.DeliveryListParams{EventID: event.ID, Limit: 1000})
			if err != nil {
				return err
			}
			if getJSON {
				return json.NewEncoder(a.stdout).Encode(struct {
					*outbox.Event
					Deliveries []*outbox.Delivery `json:"deliveries"`
				}{event, deliveries})
			}
			fmt.Fprintf(a.stdout, "event %s: %s (agent %s, organization %s), created %s\n  payload %s\n", event.ID, event.Type,
				orDash(event.AgentID), orDash(event.OrganizationID), event.CreatedAt.Local().Format(time.DateTime), truncate(string(event.Payload), 200))
			for _, d := range deliveries {
				fmt.Fprintf(a.stdout, "  delivery %d → %s: %s, attempt %d of %d\n", d.ID, d.SubscriptionID, d.State, d.Attempt, d.MaxAttempts)
			}
			return nil
		},
	}
	get.Flags().BoolVar(&getJSON, "json", false, "print JSON")
	cmd.AddCommand(list, get, newEventTypesCommand(a))
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
