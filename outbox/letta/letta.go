// Package letta owns outboxd's integration with Letta, the AI agent server: it
// installs, upgrades, inspects and removes the triggers (sql/letta) that publish
// Letta's lifecycle events (steps, messages, tool calls, tool attachments, runs,
// jobs) into the outbox in the same transaction as Letta's own writes, without a
// change to Letta.
package letta

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/secretbox"
	"github.com/outboxd/outboxd/outbox/signing"
	lettasql "github.com/outboxd/outboxd/sql/letta"
)

// Version is the version of the trigger SQL this build installs.
const Version = 1

// Events lists every event the integration can publish.
var Events = []string{
	"agent.step.completed",
	"agent.step.failed",
	"agent.message.sent",
	"tool.execution.completed",
	"agent.tool.attached",
	"agent.tool.detached",
	"agent.run.completed",
	"agent.job.completed",
}

// lettaTables are the Letta tables the triggers read or sit on.
var lettaTables = []string{"agents", "tools", "tools_agents", "steps", "messages", "runs", "jobs"}

// Config says where outboxd and Letta live.
type Config struct {
	// Schema is outboxd's schema. Defaults to outbox.DefaultSchema.
	Schema string

	// LettaSchema holds Letta's tables: "public" for a bare install, or the schema
	// named after the database ("letta") in Letta's Docker image. Required.
	LettaSchema string

	// Events to publish. Defaults to Events (all of them).
	Events []string

	// Callbacks makes outboxd deliver Letta's run callbacks (callback_url) itself:
	// at least once, retried, signed, SSRF-checked, with the outcome written back
	// to the run. Needs Keyring to seal the callbacks' signing secret.
	Callbacks bool
	Keyring   *secretbox.Keyring
}

// InstallResult says what Install did.
type InstallResult struct {
	// CallbackSecret signs run callbacks; set only when Install made it (the
	// first install with Callbacks), to be shown once.
	CallbackSecret signing.Secret
}

var lettaSchemaPattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

func (c *Config) validate() (*Config, error) {
	v := *c
	if v.Schema == "" {
		v.Schema = outbox.DefaultSchema
	}
	if err := outbox.ValidateSchemaName(v.Schema); err != nil {
		return nil, err
	}
	if v.LettaSchema == "" {
		return nil, errors.New("the Letta schema is required: public for a bare install, letta for Letta's Docker image")
	}
	if !lettaSchemaPattern.MatchString(v.LettaSchema) {
		return nil, fmt.Errorf("letta schema %q: use lower-case letters, digits and _", v.LettaSchema)
	}
	if len(v.Events) == 0 {
		v.Events = Events
	}
	for _, e := range v.Events {
		if !slices.Contains(Events, e) {
			return nil, fmt.Errorf("unknown Letta event %q; the events are %s", e, strings.Join(Events, ", "))
		}
	}
	return &v, nil
}

func render(name string, c *Config) (string, error) {
	text, err := lettasql.Files.ReadFile(name)
	if err != nil {
		return "", err
	}
	return strings.NewReplacer("{{outbox}}", c.Schema, "{{letta}}", c.LettaSchema).Replace(string(text)), nil
}

// lock serialises installs and uninstalls on one outboxd schema.
func lock(ctx context.Context, tx pgx.Tx, schema string) error {
	_, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", "outboxd.letta."+schema)
	return err
}

// Install adds the triggers, or upgrades an older install, in one transaction:
// on any error nothing changes. Installing again is a no-op apart from the
// event selection, which it replaces.
func Install(ctx context.Context, pool *pgxpool.Pool, config *Config) (*InstallResult, error) {
	c, err := config.validate()
	if err != nil {
		return nil, err
	}
	result := &InstallResult{}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := lock(ctx, tx, c.Schema); err != nil {
			return fmt.Errorf("install letta triggers: %w", err)
		}
		if err := checkTables(ctx, tx, c); err != nil {
			return err
		}
		current, err := readInstall(ctx, tx, c.Schema)
		if err != nil {
			return err
		}
		if current != nil && current.LettaSchema != c.LettaSchema {
			return fmt.Errorf("outboxd schema %s already serves Letta in schema %s; run `outboxd letta uninstall --letta-schema %s` first",
				c.Schema, current.LettaSchema, current.LettaSchema)
		}
		script, err := render("triggers.sql", c)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, script); err != nil {
			return fmt.Errorf("install letta triggers: %w", err)
		}
		if err := installAgentWebhooks(ctx, tx, c); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO `+c.Schema+`.letta_install (version, letta_schema, events) VALUES ($1, $2, $3)
			ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version, letta_schema = EXCLUDED.letta_schema,
				events = EXCLUDED.events, installed_at = now()`, Version, c.LettaSchema, c.Events)
		if err != nil {
			return fmt.Errorf("record letta install: %w", err)
		}
		result.CallbackSecret, err = enableCallbacks(ctx, tx, c)
		return err
	})
	if err != nil {
		return nil, err
	}
	return result, nil
}

// agentWebhookColumns are the per-agent webhook columns some Letta builds carry.
var agentWebhookColumns = []string{"webhook_url", "webhook_secret", "webhook_events", "webhook_enabled"}

// installAgentWebhooks syncs agents' webhook columns into subscriptions when
// Letta's agents table has them.
func installAgentWebhooks(ctx context.Context, tx pgx.Tx, c *Config) error {
	var found int
	err := tx.QueryRow(ctx, `SELECT count(*) FROM information_schema.columns
		WHERE table_schema = $1 AND table_name = 'agents' AND column_name = ANY($2)`, c.LettaSchema, agentWebhookColumns).Scan(&found)
	if err != nil {
		return fmt.Errorf("look for agent webhook columns: %w", err)
	}
	if found != len(agentWebhookColumns) {
		_, err := tx.Exec(ctx, "DROP TRIGGER IF EXISTS outboxd_agent_webhook ON "+c.LettaSchema+".agents")
		return err
	}
	script, err := render("agent_webhooks.sql", c)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, script); err != nil {
		return fmt.Errorf("install agent webhook sync: %w", err)
	}
	return nil
}

// checkTables refuses to install where Letta's tables are not.
func checkTables(ctx context.Context, tx pgx.Tx, c *Config) error {
	var missing []string
	for _, table := range lettaTables {
		var found bool
		if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", c.LettaSchema+"."+table).Scan(&found); err != nil {
			return fmt.Errorf("look for letta tables: %w", err)
		}
		if !found {
			missing = append(missing, table)
		}
	}
	if len(missing) == len(lettaTables) {
		return fmt.Errorf("no Letta tables in schema %s; pass the schema Letta uses (--letta-schema public or letta)", c.LettaSchema)
	}
	if len(missing) > 0 {
		return fmt.Errorf("schema %s lacks Letta's tables %s; is Letta's database migrated?", c.LettaSchema, strings.Join(missing, ", "))
	}
	var installed bool
	if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", c.Schema+".events").Scan(&installed); err != nil {
		return fmt.Errorf("look for outboxd: %w", err)
	}
	if !installed {
		return fmt.Errorf("schema %s has no outboxd tables; run `outboxd migrate up` first", c.Schema)
	}
	return nil
}

// Uninstall removes the triggers and outboxd's Letta tables. It is a no-op when
// nothing is installed.
func Uninstall(ctx context.Context, pool *pgxpool.Pool, config *Config) error {
	c, err := config.validate()
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := lock(ctx, tx, c.Schema); err != nil {
			return fmt.Errorf("uninstall letta triggers: %w", err)
		}
		current, err := readInstall(ctx, tx, c.Schema)
		if err != nil {
			return err
		}
		if current != nil {
			c.LettaSchema = current.LettaSchema
		}
		var lettaFound bool
		if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", c.LettaSchema+".steps").Scan(&lettaFound); err != nil {
			return fmt.Errorf("uninstall letta triggers: %w", err)
		}
		script, err := render("uninstall.sql", c)
		if err != nil {
			return err
		}
		if !lettaFound {
			// Letta's tables are gone (and their triggers with them): drop only ours.
			var kept []string
			for _, line := range strings.Split(script, "\n") {
				if !strings.HasPrefix(line, "DROP TRIGGER") {
					kept = append(kept, line)
				}
			}
			script = strings.Join(kept, "\n")
		}
		if _, err := tx.Exec(ctx, script); err != nil {
			return fmt.Errorf("uninstall letta triggers: %w", err)
		}
		return nil
	})
}

// TriggerError is a failure a trigger recorded instead of failing Letta's write.
type TriggerError struct {
	At        time.Time `json:"at"`
	Table     string    `json:"table"`
	Operation string    `json:"operation"`
	SQLState  string    `json:"sqlstate"`
	Message   string    `json:"message"`
}

// Status is what is installed.
type Status struct {
	Installed   bool           `json:"installed"`
	Version     int            `json:"version,omitempty"`
	LatestVer   int            `json:"latest_version"`
	LettaSchema string         `json:"letta_schema,omitempty"`
	Events      []string       `json:"events,omitempty"`
	Callbacks   bool           `json:"callbacks"`
	InstalledAt *time.Time     `json:"installed_at,omitempty"`
	ErrorCount  int64          `json:"error_count"`
	Errors      []TriggerError `json:"recent_errors"`
}

func readInstall(ctx context.Context, q pgx.Tx, schema string) (*Status, error) {
	var exists bool
	if err := q.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", schema+".letta_install").Scan(&exists); err != nil {
		return nil, fmt.Errorf("read letta install: %w", err)
	}
	if !exists {
		return nil, nil
	}
	s := &Status{Installed: true, LatestVer: Version}
	var at time.Time
	err := q.QueryRow(ctx, "SELECT version, letta_schema, events, installed_at, callbacks FROM "+schema+".letta_install").Scan(&s.Version, &s.LettaSchema, &s.Events, &at, &s.Callbacks)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read letta install: %w", err)
	}
	s.InstalledAt = &at
	return s, nil
}

// ReadStatus reports the install in an outboxd schema and its recent trigger errors.
func ReadStatus(ctx context.Context, pool *pgxpool.Pool, schema string) (*Status, error) {
	if schema == "" {
		schema = outbox.DefaultSchema
	}
	if err := outbox.ValidateSchemaName(schema); err != nil {
		return nil, err
	}
	var status *Status
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		if status, err = readInstall(ctx, tx, schema); err != nil || status == nil {
			return err
		}
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+schema+".letta_trigger_errors").Scan(&status.ErrorCount); err != nil {
			return fmt.Errorf("count trigger errors: %w", err)
		}
		rows, err := tx.Query(ctx, "SELECT at, table_name, operation, sqlstate, message FROM "+schema+".letta_trigger_errors ORDER BY id DESC LIMIT 10")
		if err != nil {
			return fmt.Errorf("read trigger errors: %w", err)
		}
		status.Errors, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (TriggerError, error) {
			var e TriggerError
			err := row.Scan(&e.At, &e.Table, &e.Operation, &e.SQLState, &e.Message)
			return e, err
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	if status == nil {
		status = &Status{LatestVer: Version}
	}
	if status.Errors == nil {
		status.Errors = []TriggerError{}
	}
	return status, nil
}
