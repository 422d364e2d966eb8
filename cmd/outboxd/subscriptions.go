package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/signing"
)

func newSubscriptionsCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "subscriptions",
		Aliases: []string{"subscription", "subs"},
		Short:   "Create, list, show, update, test, enable, disable and delete webhook subscriptions; rotate their secrets",
	}
	cmd.AddCommand(newSubscriptionsCreateCommand(a), newSubscriptionsListCommand(a), newSubscriptionsGetCommand(a), newSubscriptionsDeleteCommand(a),
		newSubscriptionsEnableCommand(a, true), newSubscriptionsEnableCommand(a, false), newSubscriptionsTestCommand(a),
		newSubscriptionsUpdateCommand(a), newSubscriptionsRotateSecretCommand(a), newSubscriptionsStatsCommand(a))
	return cmd
}

func newSubscriptionsCreateCommand(a *app) *cobra.Command {
	var (
		params        outbox.SubscriptionCreateParams
		events        string
		secret        string
		headers       []string
		retrySchedule string
		allowPrivate  string
		asJSON        bool
	)
	cmd := &cobra.Command{
		Use:   "create --url URL [--events TYPES] [--agent ID] [--org ID]",
		Short: "Create a subscription; prints its signing secret, which is shown only now",
		Example: `  outboxd subscriptions create --url https://example.com/webhooks --events 'agent.step.*,agent.run.completed' --agent agent-1
  outboxd subscriptions create --url https://example.com/all --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			for e := range strings.SplitSeq(events, ",") {
				if e = strings.TrimSpace(e); e != "" {
					params.EventTypes = append(params.EventTypes, e)
				}
			}
			if secret != "" {
				parsed, err := signing.ParseSecret(secret)
				if err != nil {
					return fmt.Errorf("--secret: %w", err)
				}
				params.Secret = parsed
			}
			var err error
			if params.Headers, err = parseHeaderFlags(headers); err != nil {
				return err
			}
			if retrySchedule != "" {
				schedule, err := outbox.ParseRetrySchedule(retrySchedule)
				if err != nil {
					return fmt.Errorf("--retry-schedule: %w", err)
				}
				params.RetrySchedule = schedule
			}

			store, pool, err := a.openStore(ctx, &storeOpts{allowPrivateTargets: allowPrivate})
			if err != nil {
				return err
			}
			defer pool.Close()
			result, err := store.SubscriptionCreate(ctx, &params)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(a.stdout).Encode(result)
			}
			w := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintf(w, "Created subscription %s\n", result.ID)
			fmt.Fprintf(w, "  url:\t%s\n", result.URL)
			fmt.Fprintf(w, "  events:\t%s\n", strings.Join(result.EventTypes, ","))
			if result.AgentID != "" {
				fmt.Fprintf(w, "  agent:\t%s\n", result.AgentID)
			}
			if result.OrganizationID != "" {
				fmt.Fprintf(w, "  organization:\t%s\n", result.OrganizationID)
			}
			if len(result.HeaderNames) > 0 {
				fmt.Fprintf(w, "  headers:\t%s (values are stored encrypted and never shown)\n", strings.Join(result.HeaderNames, ", "))
			}
			if result.RetrySchedule != nil {
				fmt.Fprintf(w, "  retry schedule:\t%s\n", result.RetrySchedule)
			}
			if result.RateLimit > 0 {
				fmt.Fprintf(w, "  rate limit:\t%d/s\n", result.RateLimit)
			}
			if result.MaxInFlight > 0 {
				fmt.Fprintf(w, "  max in flight:\t%d\n", result.MaxInFlight)
			}
			if result.Ordering == outbox.OrderingAgent {
				fmt.Fprintf(w, "  ordering:\tagent (on dead: %s)\n", result.OnDead)
			}
			fmt.Fprintf(w, "  secret:\t%s\n", result.Secret)
			fmt.Fprintln(w, "\nThe secret is shown only now. Receivers use it to verify the webhook-signature header.")
			return w.Flush()
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&params.URL, "url", "", "receiver URL, http or https (required)")
	flags.StringVar(&events, "events", "*", "comma-separated event types, prefixes like agent.step.*, or *")
	flags.StringVar(&params.AgentID, "agent", "", "only this agent's events")
	flags.StringVar(&params.OrganizationID, "org", "", "only this organization's events")
	flags.StringVar(&params.Description, "description", "", "a note for people")
	flags.StringVar(&secret, "secret", "", "signing secret (whsec_…); default: generate one")
	flags.StringArrayVar(&headers, "header", nil, "extra request header NAME=VALUE, such as credentials (repeatable); values are stored encrypted and never shown")
	flags.StringVar(&retrySchedule, "retry-schedule", "", "waits between attempts for this subscription, e.g. 1s,5s,5m (default: the daemon's)")
	flags.IntVar(&params.RateLimit, "rate-limit", 0, "at most this many deliveries per second, across every daemon (0: no limit)")
	flags.IntVar(&params.MaxInFlight, "max-in-flight", 0, "at most this many deliveries in flight at once, across every daemon (0: each daemon's default cap)")
	flags.StringVar((*string)(&params.Ordering), "ordering", "none", "'agent': deliver each agent's events one at a time, in publish order")
	flags.StringVar((*string)(&params.OnDead), "on-dead", "block", "with --ordering agent, when a delivery ends dead: 'block' the agent's line until it is retried, or 'skip' it")
	flags.StringVar(&allowPrivate, "allow-private-targets", "", "CIDR prefixes the URL may point at although private or loopback, e.g. 127.0.0.0/8")
	flags.BoolVar(&asJSON, "json", false, "print the subscription (with its secret) as JSON")
	a.bindEnv(flags, "allow-private-targets", "OUTBOXD_ALLOW_PRIVATE_TARGETS")
	_ = cmd.MarkFlagRequired("url")
	return cmd
}

// parseHeaderFlags reads repeated --header NAME=VALUE flags.
func parseHeaderFlags(flags []string) (map[string]string, error) {
	var headers map[string]string
	for _, h := range flags {
		name, value, ok := strings.Cut(h, "=")
		if !ok {
			return nil, fmt.Errorf("--header %q: use NAME=VALUE", h)
		}
		if headers == nil {
			headers = map[string]string{}
		}
		headers[strings.TrimSpace(name)] = value
	}
	return headers, nil
}

func newSubscriptionsListCommand(a *app) *cobra.Command {
	var (
		params outbox.SubscriptionListParams
		paging pageFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list [--agent ID] [--org ID] [--limit N] [--cursor CURSOR]",
		Short: "List subscriptions, oldest first (secrets are never shown)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			after, err := paging.key()
			if err != nil {
				return err
			}
			params.After, params.Limit = after, paging.fetch()
			store, pool, err := a.openStore(cmd.Context(), nil)
			if err != nil {
				return err
			}
			defer pool.Close()
			subs, err := store.SubscriptionList(cmd.Context(), &params)
			if err != nil {
				return err
			}
			pg := pageOf(&paging, subs, func(s *outbox.Subscription) string { return s.ID })
			return printPage(a, cmd, pg, asJSON, "ID\tURL\tEVENTS\tAGENT\tORGANIZATION\tENABLED", func(s *outbox.Subscription) string {
				enabled := "yes"
				if !s.Enabled {
					enabled = "no: " + s.DisabledReason
				}
				return strings.Join([]string{s.ID, s.URL, strings.Join(s.EventTypes, ","), dash(s.AgentID), dash(s.OrganizationID), enabled}, "\t")
			})
		},
	}
	cmd.Flags().StringVar(&params.AgentID, "agent", "", "only subscriptions scoped to this agent")
	cmd.Flags().StringVar(&params.OrganizationID, "org", "", "only subscriptions scoped to this organization")
	paging.register(cmd.Flags(), "subscriptions")
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"data": [...], "next_cursor": ...}, as the API does`)
	return cmd
}

func newSubscriptionsGetCommand(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "get ID",
		Short: "Show a subscription (never its secret, nor its headers' values)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, pool, err := a.openStore(cmd.Context(), nil)
			if err != nil {
				return err
			}
			defer pool.Close()
			sub, err := store.SubscriptionGet(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("subscription %s: %w", args[0], err)
			}
			if asJSON {
				return json.NewEncoder(a.stdout).Encode(sub)
			}
			printSubscription(a, sub)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printSubscription shows a subscription as a table of its fields. Header values
// are left out: they often carry the receiver's credentials.
func printSubscription(a *app, s *outbox.Subscription) {
	w := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "subscription %s\n", s.ID)
	fmt.Fprintf(w, "  url:\t%s\n", s.URL)
	fmt.Fprintf(w, "  events:\t%s\n", strings.Join(s.EventTypes, ","))
	fmt.Fprintf(w, "  agent:\t%s\n", dash(s.AgentID))
	fmt.Fprintf(w, "  organization:\t%s\n", dash(s.OrganizationID))
	if s.Description != "" {
		fmt.Fprintf(w, "  description:\t%s\n", s.Description)
	}
	enabled := "yes"
	if !s.Enabled {
		enabled = "no: " + dash(s.DisabledReason)
		if s.DisabledAt != nil {
			enabled += " (since " + s.DisabledAt.Local().Format(time.DateTime) + ")"
		}
	}
	fmt.Fprintf(w, "  enabled:\t%s\n", enabled)
	if len(s.HeaderNames) > 0 {
		fmt.Fprintf(w, "  headers:\t%s (values not shown)\n", strings.Join(s.HeaderNames, ", "))
	}
	schedule := "the daemon's default"
	if s.RetrySchedule != nil {
		schedule = s.RetrySchedule.String()
	}
	fmt.Fprintf(w, "  retry schedule:\t%s\n", schedule)
	if s.RateLimit > 0 {
		fmt.Fprintf(w, "  rate limit:\t%d/s\n", s.RateLimit)
	}
	if s.MaxInFlight > 0 {
		fmt.Fprintf(w, "  max in flight:\t%d\n", s.MaxInFlight)
	}
	if s.Ordering == outbox.OrderingAgent {
		fmt.Fprintf(w, "  ordering:\tagent (on dead: %s)\n", s.OnDead)
	}
	if s.AgentWebhook {
		fmt.Fprintf(w, "  agent webhook:\tyes (outboxd agents webhook get %s)\n", s.AgentID)
	}
	if s.FailureStreak > 0 {
		failing := fmt.Sprintf("%d attempts failed in a row", s.FailureStreak)
		if s.FailingSince != nil {
			failing += " since " + s.FailingSince.Local().Format(time.DateTime)
		}
		if s.CircuitOpenUntil != nil && s.CircuitOpenUntil.After(time.Now()) {
			failing += "; circuit open until " + s.CircuitOpenUntil.Local().Format(time.DateTime)
		}
		fmt.Fprintf(w, "  failing:\t%s\n", failing)
	}
	fmt.Fprintf(w, "  created:\t%s\n", s.CreatedAt.Local().Format(time.DateTime))
	fmt.Fprintf(w, "  updated:\t%s\n", s.UpdatedAt.Local().Format(time.DateTime))
	_ = w.Flush()
}

func newSubscriptionsDeleteCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "delete ID...",
		Short: "Delete subscriptions and their secrets; their pending deliveries are cancelled",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, ids []string) error {
			store, pool, err := a.openStore(cmd.Context(), nil)
			if err != nil {
				return err
			}
			defer pool.Close()
			for _, id := range ids {
				err := store.SubscriptionDelete(cmd.Context(), id)
				if errors.Is(err, outbox.ErrNotFound) {
					return fmt.Errorf("subscription %s not found", id)
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "Deleted subscription %s\n", id)
			}
			return nil
		},
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
