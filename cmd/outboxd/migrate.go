package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/outboxd/outboxd/migrations"
)

func newMigrateCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Create or update outboxd's tables (River's and its own)",
	}
	var asJSON bool
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print the result as JSON")

	migrator := func(cmd *cobra.Command) (*migrations.Migrator, func(), error) {
		logger, err := a.logger()
		if err != nil {
			return nil, nil, err
		}
		keyring, err := a.keyring()
		if err != nil {
			return nil, nil, err
		}
		pool, err := a.connect(cmd.Context())
		if err != nil {
			return nil, nil, err
		}
		m, err := migrations.New(pool, &migrations.Config{Schema: a.schema, Logger: logger, Keyring: keyring})
		if err != nil {
			pool.Close()
			return nil, nil, err
		}
		return m, pool.Close, nil
	}
	printResult := func(result *migrations.Result, verb string) error {
		if result.HeadersPlaintext > 0 {
			fmt.Fprintf(a.stderr, "warning: %d subscriptions keep custom header values (often credentials) in plaintext, written before outboxd encrypted them. "+
				"Set OUTBOXD_ENCRYPTION_KEY and run `outboxd migrate up` again to encrypt them; a daemon also encrypts them when it starts.\n", result.HeadersPlaintext)
		}
		if asJSON {
			return json.NewEncoder(a.stdout).Encode(result)
		}
		if result.HeadersSealed > 0 {
			fmt.Fprintf(a.stdout, "Encrypted the custom header values of %d subscriptions, kept in plaintext before.\n", result.HeadersSealed)
		}
		if result.HeadersUnsealed > 0 {
			fmt.Fprintf(a.stdout, "Decrypted the custom header values of %d subscriptions: the versions before keep them in plaintext.\n", result.HeadersUnsealed)
		}
		if len(result.River) == 0 && len(result.Outboxd) == 0 {
			fmt.Fprintf(a.stdout, "Nothing to do: schema %s is at River %d, outboxd %d.\n", a.schema, result.RiverCurrent, result.OutboxdCurrent)
			return nil
		}
		if len(result.River) > 0 {
			fmt.Fprintf(a.stdout, "River: %s versions %v\n", verb, result.River)
		}
		if len(result.Outboxd) > 0 {
			fmt.Fprintf(a.stdout, "outboxd: %s versions %v\n", verb, result.Outboxd)
		}
		fmt.Fprintf(a.stdout, "Schema %s is now at River %d, outboxd %d.\n", a.schema, result.RiverCurrent, result.OutboxdCurrent)
		return nil
	}

	up := &cobra.Command{
		Use:   "up",
		Short: "Apply every pending migration (safe to run repeatedly and concurrently)",
		Long: `Apply every pending migration (safe to run repeatedly and concurrently).

With OUTBOXD_ENCRYPTION_KEY set it also encrypts the custom header values that
subscriptions kept in plaintext before migration 7; without it, it says how many
remain (a daemon encrypts them when it starts).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, closePool, err := migrator(cmd)
			if err != nil {
				return err
			}
			defer closePool()
			result, err := m.Up(cmd.Context())
			if err != nil {
				return err
			}
			return printResult(result, "applied")
		},
	}

	var steps int
	var all, yes bool
	down := &cobra.Command{
		Use:   "down",
		Short: "Roll back outboxd's migrations (one by default)",
		Long: `Roll back outboxd's migrations (one by default).

Rolling back past migration 7 decrypts the custom header values of subscriptions,
which the versions before keep in plaintext: it needs OUTBOXD_ENCRYPTION_KEY (and
OUTBOXD_ENCRYPTION_KEYS_OLD for older keys), and refuses without.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if all && !yes {
				return errors.New("--all drops every outboxd and River table in the schema, with their data; add --yes to confirm")
			}
			m, closePool, err := migrator(cmd)
			if err != nil {
				return err
			}
			defer closePool()
			result, err := m.Down(cmd.Context(), &migrations.DownOpts{Steps: steps, All: all})
			if err != nil {
				return err
			}
			return printResult(result, "rolled back")
		},
	}
	down.Flags().IntVar(&steps, "steps", 1, "how many of outboxd's migrations to roll back")
	down.Flags().BoolVar(&all, "all", false, "roll back everything, River's tables included")
	down.Flags().BoolVar(&yes, "yes", false, "confirm --all")

	status := &cobra.Command{
		Use:   "status",
		Short: "Show the applied and latest versions (changes nothing)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, closePool, err := migrator(cmd)
			if err != nil {
				return err
			}
			defer closePool()
			v, err := m.Status(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(a.stdout).Encode(struct {
					Schema string `json:"schema"`
					*migrations.Versions
					UpToDate bool `json:"up_to_date"`
				}{a.schema, v, v.UpToDate()})
			}
			dirty := ""
			if v.OutboxdDirty {
				dirty = " (dirty: a migration failed part way; fix it, then force the version)"
			}
			fmt.Fprintf(a.stdout, "schema:   %s\nRiver:    %d of %d\noutboxd:  %d of %d%s\n", a.schema, v.RiverCurrent, v.RiverLatest, v.OutboxdCurrent, v.OutboxdLatest, dirty)
			if v.UpToDate() {
				fmt.Fprintln(a.stdout, "up to date")
			} else {
				fmt.Fprintln(a.stdout, "pending migrations: run `outboxd migrate up`")
			}
			return nil
		},
	}
	cmd.AddCommand(up, down, status)
	return cmd
}
