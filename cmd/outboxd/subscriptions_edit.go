package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/signing"
)

func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func newSubscriptionsUpdateCommand(a *app) *cobra.Command {
	var (
		url, events, description, retrySchedule string
		allowPrivate                            string
		rateLimit, maxInFlight                  int
		ordering, onDead                        string
		headers                                 []string
		noHeaders                               bool
		asJSON                                  bool
	)
	cmd := &cobra.Command{
		Use:   "update ID [--url URL] [--events TYPES] [--description TEXT] [--header NAME=VALUE]... [--retry-schedule LIST|default]",
		Short: "Change a subscription; flags not given are left as they are",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			flags := cmd.Flags()
			params := &outbox.SubscriptionUpdateParams{}
			if flags.Changed("url") {
				params.URL = &url
			}
			if flags.Changed("events") {
				params.EventTypes = splitList(events)
				if params.EventTypes == nil {
					params.EventTypes = []string{}
				}
			}
			if flags.Changed("description") {
				params.Description = &description
			}
			if flags.Changed("retry-schedule") {
				params.SetRetrySchedule = true
				if retrySchedule != "default" {
					schedule, err := outbox.ParseRetrySchedule(retrySchedule)
					if err != nil {
						return fmt.Errorf("--retry-schedule: %w", err)
					}
					params.RetrySchedule = schedule
				}
			}
			if flags.Changed("rate-limit") {
				params.RateLimit = &rateLimit
			}
			if flags.Changed("max-in-flight") {
				params.MaxInFlight = &maxInFlight
			}
			if flags.Changed("ordering") {
				params.Ordering = (*outbox.Ordering)(&ordering)
			}
			if flags.Changed("on-dead") {
				params.OnDead = (*outbox.OnDead)(&onDead)
			}
			switch {
			case noHeaders && len(headers) > 0:
				return errors.New("--no-headers and --header exclude each other")
			case noHeaders:
				params.Headers = map[string]string{}
			case len(headers) > 0:
				var err error
				if params.Headers, err = parseHeaderFlags(headers); err != nil {
					return err
				}
			}
			if params.URL == nil && params.EventTypes == nil && params.Description == nil && !params.SetRetrySchedule &&
				params.RateLimit == nil && params.MaxInFlight == nil && params.Ordering == nil && params.OnDead == nil && params.Headers == nil {
				return errors.New("nothing to change: pass --url, --events, --description, --header, --no-headers, --retry-schedule, --rate-limit, --max-in-flight, --ordering or --on-dead")
			}
			store, pool, err := a.openStore(cmd.Context(), &storeOpts{allowPrivateTargets: allowPrivate})
			if err != nil {
				return err
			}
			defer pool.Close()
			sub, err := store.SubscriptionUpdate(cmd.Context(), args[0], params)
			if err != nil {
				return fmt.Errorf("subscription %s: %w", args[0], err)
			}
			if asJSON {
				return json.NewEncoder(a.stdout).Encode(sub)
			}
			fmt.Fprintf(a.stdout, "updated subscription %s: %s, events %s\n", sub.ID, sub.URL, strings.Join(sub.EventTypes, ","))
			return nil
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&url, "url", "", "new receiver URL")
	flags.StringVar(&events, "events", "", "new comma-separated event types")
	flags.StringVar(&description, "description", "", "new description")
	flags.StringArrayVar(&headers, "header", nil, "replace every custom header with these NAME=VALUE (repeatable); values are stored encrypted and never shown")
	flags.BoolVar(&noHeaders, "no-headers", false, "remove every custom header")
	flags.StringVar(&retrySchedule, "retry-schedule", "", "new waits between attempts, or 'default' for the daemon's")
	flags.IntVar(&rateLimit, "rate-limit", 0, "deliveries per second across every daemon; 0 removes the limit")
	flags.IntVar(&maxInFlight, "max-in-flight", 0, "deliveries in flight at once across every daemon; 0 returns to each daemon's default cap")
	flags.StringVar(&ordering, "ordering", "", "'agent' or 'none'")
	flags.StringVar(&onDead, "on-dead", "", "'block' or 'skip'")
	flags.StringVar(&allowPrivate, "allow-private-targets", "", "CIDR prefixes the new URL may point at although private or loopback")
	flags.BoolVar(&asJSON, "json", false, "print the subscription as JSON")
	a.bindEnv(flags, "allow-private-targets", "OUTBOXD_ALLOW_PRIVATE_TARGETS")
	return cmd
}

func newSubscriptionsRotateSecretCommand(a *app) *cobra.Command {
	var (
		grace  time.Duration
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "rotate-secret ID [--grace 24h]",
		Short: "Give a subscription a new signing secret; the old one keeps signing for the grace period",
		Long: `Give a subscription a new signing secret, printed once. Until the grace period
ends (default 24h, at most 168h) every delivery carries a signature by the old
secret and one by the new, so receivers can switch without losing a webhook.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, pool, err := a.openStore(cmd.Context(), nil)
			if err != nil {
				return err
			}
			defer pool.Close()
			result, err := store.SubscriptionSecretRotate(cmd.Context(), args[0], grace)
			if err != nil {
				return fmt.Errorf("subscription %s: %w", args[0], err)
			}
			if asJSON {
				return json.NewEncoder(a.stdout).Encode(result)
			}
			fmt.Fprintf(a.stdout, "new secret for %s (shown only now):\n\n  %s\n\nThe previous secret keeps signing until %s.\n",
				args[0], result.Secret, result.PreviousExpiresAt.Local().Format(time.DateTime))
			return nil
		},
	}
	cmd.Flags().DurationVar(&grace, "grace", outbox.SecretRotateGraceDefault, "how long the previous secret keeps signing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (with the secret)")
	return cmd
}

func newAgentsCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agents",
		Short: "Per-agent webhook configuration (webhook_url, webhook_secret, webhook_events, webhook_enabled)",
	}
	webhook := &cobra.Command{Use: "webhook", Short: "Show, set or delete an agent's webhook"}

	var (
		url, events, secret, org string
		disabled                 bool
		allowPrivate             string
		asJSON                   bool
	)
	set := &cobra.Command{
		Use:   "set AGENT_ID --url URL [--events TYPES] [--secret whsec_…] [--disabled]",
		Short: "Create or replace an agent's webhook; prints a generated secret once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			params := &outbox.AgentWebhookPutParams{AgentID: args[0], OrganizationID: org, URL: url, EventTypes: splitList(events)}
			if cmd.Flags().Changed("disabled") {
				enabled := !disabled
				params.Enabled = &enabled
			}
			if secret != "" {
				parsed, err := signing.ParseSecret(secret)
				if err != nil {
					return fmt.Errorf("--secret: %w", err)
				}
				params.Secret = parsed
			}
			store, pool, err := a.openStore(cmd.Context(), &storeOpts{allowPrivateTargets: allowPrivate})
			if err != nil {
				return err
			}
			defer pool.Close()
			result, err := store.AgentWebhookPut(cmd.Context(), params)
			if err != nil {
				return fmt.Errorf("agent %s: %w", args[0], err)
			}
			if asJSON {
				out := map[string]any{"subscription": result.Subscription, "created": result.Created}
				if result.Secret != nil {
					out["webhook_secret"] = result.Secret.String()
				}
				return json.NewEncoder(a.stdout).Encode(out)
			}
			verb := "updated"
			if result.Created {
				verb = "created"
			}
			fmt.Fprintf(a.stdout, "%s the webhook of agent %s (subscription %s)\n", verb, args[0], result.Subscription.ID)
			if result.Secret != nil {
				fmt.Fprintf(a.stdout, "secret (shown only now): %s\n", result.Secret)
			}
			return nil
		},
	}
	flags := set.Flags()
	flags.StringVar(&url, "url", "", "receiver URL (required)")
	flags.StringVar(&events, "events", "", "comma-separated event types (default *)")
	flags.StringVar(&secret, "secret", "", "signing secret; replaces the current one at once")
	flags.StringVar(&org, "org", "", "organization of a new webhook")
	flags.BoolVar(&disabled, "disabled", false, "keep the webhook but send nothing")
	flags.StringVar(&allowPrivate, "allow-private-targets", "", "CIDR prefixes the URL may point at although private or loopback")
	flags.BoolVar(&asJSON, "json", false, "print JSON")
	a.bindEnv(flags, "allow-private-targets", "OUTBOXD_ALLOW_PRIVATE_TARGETS")
	_ = set.MarkFlagRequired("url")

	var getJSON bool
	get := &cobra.Command{
		Use:   "get AGENT_ID",
		Short: "Show an agent's webhook (never its secret)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, pool, err := a.openStore(cmd.Context(), nil)
			if err != nil {
				return err
			}
			defer pool.Close()
			sub, err := store.AgentWebhookGet(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("agent %s: webhook %w", args[0], err)
			}
			if getJSON {
				return json.NewEncoder(a.stdout).Encode(sub)
			}
			fmt.Fprintf(a.stdout, "agent %s: %s, events %s, enabled %t (subscription %s)\n", args[0], sub.URL,
				strings.Join(sub.EventTypes, ","), sub.Enabled, sub.ID)
			return nil
		},
	}
	get.Flags().BoolVar(&getJSON, "json", false, "print JSON")

	del := &cobra.Command{
		Use:   "delete AGENT_ID",
		Short: "Delete an agent's webhook",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, pool, err := a.openStore(cmd.Context(), nil)
			if err != nil {
				return err
			}
			defer pool.Close()
			sub, err := store.AgentWebhookGet(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("agent %s: webhook %w", args[0], err)
			}
			if err := store.SubscriptionDelete(cmd.Context(), sub.ID); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "deleted the webhook of agent %s\n", args[0])
			return nil
		},
	}
	webhook.AddCommand(set, get, del)
	cmd.AddCommand(webhook)
	return cmd
}
