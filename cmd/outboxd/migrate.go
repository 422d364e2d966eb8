package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/outboxd/outboxd/migrations"
)

func newMigrateCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Create, update or remove outboxd's tables (River's and its own)",
	}
	var asJSON bool
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print the result as JSON")

	migrator := func(cmd *cobra.Command) (*migrations.Migrator, *pgxpool.Pool, error) {
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
		if err := a.checkPooler(cmd.Context(), pool, true); err != nil {
			pool.Close()
			return nil, nil, err
		}
		m, err := migrations.New(pool, &migrations.Config{Schema: a.schema, Logger: logger, Keyring: keyring})
		if err != nil {
			pool.Close()
			return nil, nil, err
		}
		return m, pool, nil
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
		if len(result.River) == 0 && len(result.Outboxd) == 0 && !result.SchemaDropped {
			fmt.Fprintf(a.stdout, "Nothing to do: schema %s is at River %d, outboxd %d.\n", a.schema, result.RiverCurrent, result.OutboxdCurrent)
			return nil
		}
		// In the order they ran: River's first going up, outboxd's first going down.
		lines := []struct {
			name     string
			versions []int
		}{{"River", result.River}, {"outboxd", result.Outboxd}}
		if verb == "rolled back" {
			lines[0], lines[1] = lines[1], lines[0]
		}
		for _, line := range lines {
			if len(line.versions) > 0 {
				fmt.Fprintf(a.stdout, "%s: %s versions %v\n", line.name, verb, line.versions)
			}
		}
		switch {
		case result.SchemaDropped:
			fmt.Fprintf(a.stdout, "Dropped schema %s: nothing else was in it.\n", a.schema)
		case result.SchemaKept != "":
			fmt.Fprintf(a.stdout, "Schema %s is now at River %d, outboxd %d; kept it: %s.\n", a.schema, result.RiverCurrent, result.OutboxdCurrent, result.SchemaKept)
		default:
			fmt.Fprintf(a.stdout, "Schema %s is now at River %d, outboxd %d.\n", a.schema, result.RiverCurrent, result.OutboxdCurrent)
		}
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
			m, pool, err := migrator(cmd)
			if err != nil {
				return err
			}
			defer pool.Close()
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
		Use:   "down [--steps N | --all] [--yes]",
		Short: "Roll back outboxd's migrations, dropping their tables and data; asks first",
		Long: `Roll back outboxd's newest migration, the newest N with --steps N, or with --all
every outboxd and River migration: every table outboxd created, with all its
data, and then the schema itself if nothing else is left in it (public is never
dropped).

It lists what it will undo and asks first. Where it cannot ask (stdin is not a
terminal) it needs --yes. It warns when daemons are connected to the schema:
stop them first. A daemon left running on a rolled-back schema reports itself
not ready (/readyz answers 503) until ` + "`outboxd migrate up`" + ` runs again.

Rolling back past migration 7 decrypts the custom header values of subscriptions,
which the versions before keep in plaintext: it needs OUTBOXD_ENCRYPTION_KEY (and
OUTBOXD_ENCRYPTION_KEYS_OLD for older keys), and refuses without.`,
		Example: `  outboxd migrate down                 # the newest outboxd migration, after asking
  outboxd migrate down --steps 2 --yes # in a script
  outboxd migrate down --all --yes     # remove outboxd from the database entirely`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if all && cmd.Flags().Changed("steps") {
				return errors.New("--steps and --all: choose one")
			}
			if steps < 1 {
				return fmt.Errorf("--steps: %d; roll back at least 1 migration (or everything with --all)", steps)
			}
			m, pool, err := migrator(cmd)
			if err != nil {
				return err
			}
			defer pool.Close()
			opts := &migrations.DownOpts{Steps: steps, All: all}
			plan, err := m.PlanDown(ctx, opts)
			var stepsErr *migrations.StepsError
			if errors.As(err, &stepsErr) {
				return stepsMessage(cmd, m, stepsErr)
			}
			if err != nil {
				return err
			}
			if len(plan.Migrations) == 0 && !plan.DropSchema {
				if asJSON {
					return printResult(&migrations.Result{Versions: plan.Versions}, "rolled back")
				}
				fmt.Fprintf(a.stdout, "Nothing to undo: schema %s holds no outboxd or River migrations.\n", a.schema)
				return nil
			}
			activity, err := m.Activity(ctx)
			if err != nil {
				return err
			}
			config := pool.Config().ConnConfig
			fmt.Fprint(a.stderr, describeDown(plan, activity, fmt.Sprintf("database %s on %s:%d", config.Database, config.Host, config.Port)))
			if err := a.confirm("Roll back?", "migrate down drops tables and their data", yes); err != nil {
				return err
			}
			result, err := m.Down(ctx, opts)
			if errors.As(err, &stepsErr) {
				return stepsMessage(cmd, m, stepsErr)
			}
			if err != nil {
				return err
			}
			return printResult(result, "rolled back")
		},
	}
	down.Flags().IntVar(&steps, "steps", 1, "how many of outboxd's newest migrations to roll back")
	down.Flags().BoolVar(&all, "all", false, "roll back every outboxd and River migration and drop the schema if nothing else is in it")
	down.Flags().BoolVar(&yes, "yes", false, "do not ask; needed where stdin is not a terminal")

	status := &cobra.Command{
		Use:   "status",
		Short: "Show the applied and latest versions (changes nothing)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, pool, err := migrator(cmd)
			if err != nil {
				return err
			}
			defer pool.Close()
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
			switch {
			case v.UpToDate():
				fmt.Fprintln(a.stdout, "up to date")
			case !v.Behind():
				fmt.Fprintln(a.stdout, "the schema is newer than this outboxd: upgrade it")
			default:
				fmt.Fprintln(a.stdout, "pending migrations: run `outboxd migrate up`")
			}
			return nil
		},
	}
	cmd.AddCommand(up, down, status)
	return cmd
}

// stepsMessage says why --steps cannot be done, in the CLI's terms.
func stepsMessage(cmd *cobra.Command, m *migrations.Migrator, e *migrations.StepsError) error {
	if e.Applied > 0 {
		return fmt.Errorf("only %d outboxd migrations are applied in schema %s, so --steps %d cannot be done; nothing was changed "+
			"(--steps %d undoes them all; --all removes River's tables as well)", e.Applied, e.Schema, e.Requested, e.Applied)
	}
	msg := fmt.Sprintf("nothing to undo: no outboxd migration is applied in schema %s", e.Schema)
	if v, err := m.Status(cmd.Context()); err == nil && v.RiverCurrent > 0 {
		msg += " (River's tables are there: --all removes them)"
	}
	return errors.New(msg)
}

// describeDown says what a rollback will do and who may be hurt by it.
func describeDown(plan *migrations.DownPlan, activity *migrations.Activity, where string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "In schema %s (%s) this will:\n", plan.Schema, where)
	for _, mg := range plan.Migrations {
		fmt.Fprintf(&b, "  roll back %s\n", mg)
	}
	if plan.DropSchema {
		fmt.Fprintf(&b, "  drop schema %s, if nothing else is left in it\n", plan.Schema)
	}
	b.WriteString("The tables these migrations created are dropped with all their data.\n")
	if activity.Running() {
		var signs []string
		if activity.Daemons > 0 {
			signs = append(signs, fmt.Sprintf("%d outboxd daemon(s) connected (%d connections)", activity.Daemons, activity.Connections))
		}
		if activity.RiverLeader != "" {
			signs = append(signs, fmt.Sprintf("River's leader lease held by %s until %s", activity.RiverLeader,
				activity.RiverLeaderUntil.Local().Format(time.TimeOnly)))
		}
		fmt.Fprintf(&b, "WARNING: daemons are working on schema %s: %s. Stop them first: on a rolled-back schema they fail and report themselves not ready until `outboxd migrate up`.\n",
			plan.Schema, strings.Join(signs, "; "))
	}
	return b.String()
}
