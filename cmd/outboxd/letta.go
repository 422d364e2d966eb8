package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/outboxd/outboxd/outbox/httpapi"
	"github.com/outboxd/outboxd/outbox/letta"
)

func newLettaCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "letta",
		Short: "Publish Letta's lifecycle events from its own tables, with no change to Letta",
		Long: `Install triggers on Letta's tables so that every step, message, tool call, tool
attachment, run and job change publishes an outbox event in Letta's own
transaction: a committed change always produces its webhook, a rolled-back one
never does. A trigger that fails records the failure (see letta status) and
never fails Letta's write.`,
	}
	var (
		lettaSchema string
		events      string
		callbacks   bool
	)
	install := &cobra.Command{
		Use:   "install --letta-schema SCHEMA [--events TYPES]",
		Short: "Install or upgrade the triggers (idempotent)",
		Example: `  outboxd letta install --letta-schema letta     # Letta's Docker image
  outboxd letta install --letta-schema public    # a bare install`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pool, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			config := &letta.Config{Schema: a.schema, LettaSchema: lettaSchema, Events: splitList(events), Callbacks: callbacks}
			if callbacks {
				if config.Keyring, err = a.keyring(); err != nil {
					return err
				}
			}
			result, err := letta.Install(cmd.Context(), pool, config)
			if err != nil {
				return err
			}
			selected := config.Events
			if len(selected) == 0 {
				selected = letta.Events
			}
			fmt.Fprintf(a.stdout, "installed Letta triggers v%d on schema %s, publishing into %s: %s\n",
				letta.Version, lettaSchema, a.schema, strings.Join(selected, ", "))
			if callbacks {
				fmt.Fprintln(a.stdout, "run callbacks: delivered by outboxd (retried, signed, SSRF-checked), outcome written back to the run")
			}
			if result.CallbackSecret != nil {
				fmt.Fprintf(a.stdout, "callback signing secret (shown only now): %s\n", result.CallbackSecret)
			}
			return nil
		},
	}
	install.Flags().StringVar(&lettaSchema, "letta-schema", "", "schema of Letta's tables: public, or letta in Letta's Docker image (required)")
	install.Flags().StringVar(&events, "events", "", "comma-separated events to publish (default all)")
	install.Flags().BoolVar(&callbacks, "callbacks", false, "deliver runs' callback_url callbacks through outboxd (needs OUTBOXD_ENCRYPTION_KEY)")
	_ = install.MarkFlagRequired("letta-schema")

	var uninstallSchema string
	uninstall := &cobra.Command{
		Use:   "uninstall [--letta-schema SCHEMA]",
		Short: "Remove the triggers; Letta's data and published events stay",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pool, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			status, err := letta.ReadStatus(cmd.Context(), pool, a.schema)
			if err != nil {
				return err
			}
			if !status.Installed {
				fmt.Fprintf(a.stdout, "nothing to remove: no Letta triggers publish into %s\n", a.schema)
				return nil
			}
			schema := status.LettaSchema
			if uninstallSchema != "" && uninstallSchema != schema {
				return fmt.Errorf("the triggers are installed on schema %s, not %s", schema, uninstallSchema)
			}
			if err := letta.Uninstall(cmd.Context(), pool, &letta.Config{Schema: a.schema, LettaSchema: schema}); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "removed the Letta triggers from schema %s\n", schema)
			return nil
		},
	}
	uninstall.Flags().StringVar(&uninstallSchema, "letta-schema", "", "schema of Letta's tables (checked against the install)")

	var asJSON bool
	status := &cobra.Command{
		Use:   "status",
		Short: "Show the installed version, events and recent trigger errors",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pool, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			st, err := letta.ReadStatus(cmd.Context(), pool, a.schema)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(a.stdout).Encode(st)
			}
			if !st.Installed {
				fmt.Fprintf(a.stdout, "Letta triggers: not installed (run `outboxd letta install --letta-schema SCHEMA`)\n")
				return nil
			}
			upgrade := ""
			if st.Version < st.LatestVer {
				upgrade = fmt.Sprintf(" (v%d available: run letta install again)", st.LatestVer)
			}
			fmt.Fprintf(a.stdout, "Letta triggers: v%d%s on schema %s, installed %s\nevents: %s\ntrigger errors: %d\n",
				st.Version, upgrade, st.LettaSchema, st.InstalledAt.Local().Format(time.DateTime), strings.Join(st.Events, ", "), st.ErrorCount)
			for _, e := range st.Errors {
				fmt.Fprintf(a.stdout, "  %s  %s %s  %s  %s\n", e.At.Local().Format(time.DateTime), e.Table, e.Operation, e.SQLState, truncate(e.Message, 120))
			}
			return nil
		},
	}
	status.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(install, uninstall, status)
	return cmd
}

// lettaStatus reports the Letta triggers for the operators' console.
func lettaStatus(pool *pgxpool.Pool, schema string) func(ctx context.Context) (*httpapi.LettaStatus, error) {
	return func(ctx context.Context) (*httpapi.LettaStatus, error) {
		status, err := letta.ReadStatus(ctx, pool, schema)
		if err != nil {
			return nil, err
		}
		out := &httpapi.LettaStatus{Installed: status.Installed, ErrorCount: status.ErrorCount, Recent: []httpapi.LettaTriggerFailure{}}
		for _, e := range status.Errors {
			out.Recent = append(out.Recent, httpapi.LettaTriggerFailure{At: e.At, Table: e.Table, Operation: e.Operation, Message: e.Message})
		}
		return out, nil
	}
}
