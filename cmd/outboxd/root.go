package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/netguard"
	"github.com/outboxd/outboxd/outbox/secretbox"
)

// version is set at build time with -ldflags "-X main.version=…"; otherwise it
// comes from the module's build information.
var version = ""

func outboxdVersion() string {
	if version != "" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return "dev"
}

// app holds what every command shares: the process's environment and streams, and
// the global flags. The environment is read only here, in cmd.
type app struct {
	lookupEnv func(string) (string, bool)
	stdin     io.Reader
	stdout    io.Writer
	stderr    io.Writer

	// stdinIsTerminal reports whether a person can answer a question on stdin.
	// Nil means no.
	stdinIsTerminal func() bool

	// applicationName is the Postgres application_name of connect's connections;
	// empty means "outboxd".
	applicationName string

	databaseURL string
	schema      string
	logLevel    string
	logFormat   string
	pooler      string

	// envFlags maps flags to the environment variable that supplies them when the
	// flag is not given.
	envFlags []envFlag
}

type envFlag struct {
	flags *pflag.FlagSet
	name  string
	env   string
}

// bindEnv makes env the fallback of flag name and says so in its help.
func (a *app) bindEnv(flags *pflag.FlagSet, name, env string) {
	f := flags.Lookup(name)
	f.Usage += fmt.Sprintf(" (env %s)", env)
	a.envFlags = append(a.envFlags, envFlag{flags: flags, name: name, env: env})
}

func (a *app) applyEnv() error {
	for _, ef := range a.envFlags {
		f := ef.flags.Lookup(ef.name)
		if f.Changed {
			continue
		}
		if value, ok := a.lookupEnv(ef.env); ok && value != "" {
			if err := f.Value.Set(value); err != nil {
				return fmt.Errorf("%s: %w", ef.env, err)
			}
		}
	}
	return nil
}

func newRootCommand(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "outboxd",
		Short: "Transactional outbox daemon: committed Postgres rows become signed, retried webhooks",
		Long: `outboxd turns events your services INSERT into outbox.events, in the same
transaction as their own change, into signed (Standard Webhooks), retried HTTP
deliveries. Postgres is the only source of truth; River runs the jobs.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			return a.applyEnv()
		},
	}
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)

	flags := root.PersistentFlags()
	flags.StringVar(&a.databaseURL, "database-url", "", "Postgres connection URL")
	flags.StringVar(&a.schema, "schema", outbox.DefaultSchema, "Postgres schema holding outboxd's and River's tables")
	flags.StringVar(&a.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	flags.StringVar(&a.logFormat, "log-format", "text", "log format: text or json")
	flags.StringVar(&a.pooler, "pooler", "", `what sits between outboxd and Postgres: "" (Postgres itself, or a pooler in session mode) or "transaction" (PgBouncer's pool_mode = transaction: no prepared statements, no LISTEN; run migrate directly against Postgres)`)
	a.bindEnv(flags, "database-url", "DATABASE_URL")
	a.bindEnv(flags, "pooler", "OUTBOXD_POOLER")
	a.bindEnv(flags, "schema", "OUTBOXD_SCHEMA")
	a.bindEnv(flags, "log-level", "OUTBOXD_LOG_LEVEL")
	a.bindEnv(flags, "log-format", "OUTBOXD_LOG_FORMAT")

	root.AddCommand(
		newMigrateCommand(a),
		newRunCommand(a),
		newPublishCommand(a),
		newSubscriptionsCommand(a),
		newDeliveriesCommand(a),
		newEventsCommand(a),
		newRecoverCommand(a),
		newTokensCommand(a),
		newPortalCommand(a),
		newSystemCommand(a),
		newKeysCommand(a),
		newAgentsCommand(a),
		newLettaCommand(a),
		newListenCommand(a),
		newVersionCommand(a),
	)
	root.SetHelpCommand(newHelpCommand())
	root.InitDefaultCompletionCmd()
	refuseUnknownSubcommands(root)
	return root
}

// execute runs the command line and returns the process's exit code.
func execute(ctx context.Context, a *app, args []string) int {
	root := newRootCommand(a)
	root.SetArgs(args)
	if cmd, err := root.ExecuteContextC(ctx); err != nil {
		fmt.Fprintf(a.stderr, "outboxd: %s\n", nameFlags(cmd, err))
		return 1
	}
	return 0
}

// refuseUnknownSubcommands makes every command group fail on a word that is not
// one of its commands. Cobra checks this only on the root; a group without a Run
// of its own would print its help and exit 0, so a typo looked like success.
func refuseUnknownSubcommands(cmd *cobra.Command) {
	for _, sub := range cmd.Commands() {
		refuseUnknownSubcommands(sub)
	}
	if !cmd.HasSubCommands() || cmd.Runnable() {
		return
	}
	cmd.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return unknownCommand(cmd, args[0])
		}
		return nil
	}
	cmd.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
}

// unknownCommand says that word is not a command of group, and what is.
func unknownCommand(group *cobra.Command, word string) error {
	group.SuggestionsMinimumDistance = 2
	if suggestions := group.SuggestionsFor(word); len(suggestions) > 0 {
		// Closest first: "lst" is most likely "list", then "get" or "test".
		slices.SortStableFunc(suggestions, func(x, y string) int { return editDistance(word, x) - editDistance(word, y) })
		quoted := make([]string, len(suggestions))
		for i, s := range suggestions {
			quoted[i] = strconv.Quote(s)
		}
		last := len(quoted) - 1
		mean := quoted[last]
		if last > 0 {
			mean = strings.Join(quoted[:last], ", ") + " or " + quoted[last]
		}
		return fmt.Errorf("unknown command %q for %q; did you mean %s?", word, group.CommandPath(), mean)
	}
	if !group.HasParent() {
		return fmt.Errorf("unknown command %q for %q; run '%s --help' for the commands", word, group.CommandPath(), group.CommandPath())
	}
	var names []string
	for _, sub := range group.Commands() {
		if sub.IsAvailableCommand() {
			names = append(names, sub.Name())
		}
	}
	return fmt.Errorf("unknown command %q for %q; its commands are %s", word, group.CommandPath(), strings.Join(names, ", "))
}

// editDistance is the Levenshtein distance between a and b, ignoring case.
func editDistance(a, b string) int {
	x, y := []rune(strings.ToLower(a)), []rune(strings.ToLower(b))
	row := make([]int, len(y)+1)
	for j := range row {
		row[j] = j
	}
	for i := 1; i <= len(x); i++ {
		diagonal := row[0]
		row[0] = i
		for j := 1; j <= len(y); j++ {
			cost := 1
			if x[i-1] == y[j-1] {
				cost = 0
			}
			diagonal, row[j] = row[j], min(row[j]+1, row[j-1]+1, diagonal+cost)
		}
	}
	return row[len(y)]
}

// newHelpCommand replaces cobra's help command, which answers an unknown topic
// with the root's usage and exit status 0.
func newHelpCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		RunE: func(cmd *cobra.Command, args []string) error {
			target, rest, err := cmd.Root().Find(args)
			if err != nil {
				return err
			}
			if len(rest) > 0 {
				return unknownCommand(target, rest[0])
			}
			return target.Help()
		},
	}
}

// fieldFlags maps the library's input fields to the flags that set them, where
// the names differ by more than _ and -.
var fieldFlags = map[string]string{
	"event_types":     "events",
	"webhook_events":  "events",
	"agent_id":        "agent",
	"organization_id": "org",
	"payload":         "data",
	"headers":         "header",
	"webhook_url":     "url",
	"webhook_secret":  "secret",
}

// nameFlags rewrites a validation error to name the flag that was at fault
// (--events) instead of the library's field (event_types), when cmd has that
// flag, or the argument (AGENT_ID) when its usage line names one so.
func nameFlags(cmd *cobra.Command, err error) string {
	msg := err.Error()
	var invalid *outbox.ValidationError
	if cmd == nil || !errors.As(err, &invalid) || invalid.Field == "" {
		return msg
	}
	field, within := invalid.Field, ""
	if rest, ok := strings.CutPrefix(field, "payload"); ok && (strings.HasPrefix(rest, ".") || strings.HasPrefix(rest, "[")) {
		field, within = "payload", strings.TrimPrefix(rest, ".") // a place inside the payload: --data at step.note
	}
	name := fieldFlags[field]
	if name == "" {
		name = strings.ReplaceAll(field, "_", "-")
	}
	renamed := *invalid
	switch {
	case cmd.Flags().Lookup(name) != nil && within != "":
		renamed.Field = "--" + name + " at " + within
	case cmd.Flags().Lookup(name) != nil:
		renamed.Field = "--" + name
	case slices.Contains(strings.Fields(cmd.Use), strings.ToUpper(invalid.Field)):
		renamed.Field = strings.ToUpper(invalid.Field) // an argument, as the usage line names it
	default:
		return msg
	}
	return strings.Replace(msg, invalid.Error(), renamed.Error(), 1)
}

func (a *app) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(a.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", a.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch a.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(a.stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(a.stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", a.logFormat)
}

// poolMaxConnsDefault sizes the pool when the URL does not (pool_max_conns).
const poolMaxConnsDefault = 20

// connect opens a pool and checks the database answers. Errors never include the
// URL's password.
func (a *app) connect(ctx context.Context) (*pgxpool.Pool, error) {
	if a.databaseURL == "" {
		return nil, errors.New("no database: pass --database-url or set DATABASE_URL")
	}
	if err := outbox.ValidateSchemaName(a.schema); err != nil {
		return nil, err
	}
	config, err := pgxpool.ParseConfig(a.databaseURL)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	if !strings.Contains(a.databaseURL, "pool_max_conns") {
		config.MaxConns = poolMaxConnsDefault
	}
	config.ConnConfig.RuntimeParams["application_name"] = cmp.Or(a.applicationName, "outboxd")
	switch a.pooler {
	case "":
	case poolerTransaction:
		// A pooler in transaction mode hands a session's server process to other
		// clients between transactions, so a statement prepared on one may be
		// missing on the next (PgBouncer before 1.21 keeps none). Unless the URL
		// chose a mode, describe and execute each statement in one exchange.
		if !strings.Contains(a.databaseURL, "default_query_exec_mode") {
			config.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
		}
	default:
		return nil, fmt.Errorf("--pooler: %q is not a pooler mode: leave it empty, or say transaction", a.pooler)
	}
	pool, err := pgxpool.NewWithConfig(ctx, config)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to Postgres at %s:%d (database %q): %w",
			config.ConnConfig.Host, config.ConnConfig.Port, config.ConnConfig.Database, err)
	}
	return pool, nil
}

// poolerTransaction is --pooler for PgBouncer's pool_mode = transaction.
const poolerTransaction = "transaction"

// checkPooler makes sure the pool's way to Postgres suits what the command
// needs: a session of its own (migrate: its lock is held by the session), or
// one that the --pooler setting describes truly (run: in transaction mode it
// must poll and must not LISTEN).
func (a *app) checkPooler(ctx context.Context, pool *pgxpool.Pool, needsSession bool) error {
	if needsSession && a.pooler == poolerTransaction {
		return errors.New("--pooler transaction: this command holds a session lock, which a pooler in transaction mode does not keep; point it at Postgres directly (or at a session-mode pool)")
	}
	if a.pooler == poolerTransaction {
		return nil
	}
	pooled, err := outbox.DetectTransactionPooler(ctx, pool)
	if err != nil {
		return err
	}
	if pooled && needsSession {
		return fmt.Errorf("%w: this command holds a session lock, which such a pooler does not keep; point it at Postgres directly (or at a session-mode pool)", outbox.ErrTransactionPooler)
	}
	if pooled {
		return fmt.Errorf("%w: LISTEN/NOTIFY and prepared statements do not survive it; run with --pooler transaction (OUTBOXD_POOLER=transaction), which polls and prepares nothing, or use pool_mode = session", outbox.ErrTransactionPooler)
	}
	return nil
}

// keyring reads OUTBOXD_ENCRYPTION_KEY (and OUTBOXD_ENCRYPTION_KEYS_OLD, a
// comma-separated list of keys that are still read). It returns nil, nil when no
// key is set; what needs one reports outbox.ErrNoEncryptionKey.
func (a *app) keyring() (*secretbox.Keyring, error) {
	current, ok := a.lookupEnv("OUTBOXD_ENCRYPTION_KEY")
	if !ok || current == "" {
		return nil, nil
	}
	key, err := secretbox.ParseKey(current)
	if err != nil {
		return nil, fmt.Errorf("OUTBOXD_ENCRYPTION_KEY: %w", err)
	}
	var older []*secretbox.Key
	if list, ok := a.lookupEnv("OUTBOXD_ENCRYPTION_KEYS_OLD"); ok {
		for encoded := range strings.SplitSeq(list, ",") {
			if strings.TrimSpace(encoded) == "" {
				continue
			}
			old, err := secretbox.ParseKey(encoded)
			if err != nil {
				return nil, fmt.Errorf("OUTBOXD_ENCRYPTION_KEYS_OLD: %w", err)
			}
			older = append(older, old)
		}
	}
	return secretbox.NewKeyring(key, older...), nil
}

// guard builds the SSRF guard from --allow-private-targets.
func guard(allowPrivateTargets string) (*netguard.Guard, error) {
	allow, err := netguard.ParsePrefixes(allowPrivateTargets)
	if err != nil {
		return nil, fmt.Errorf("--allow-private-targets: %w", err)
	}
	return &netguard.Guard{Allow: allow}, nil
}

// storeOpts configure openStore.
type storeOpts struct {
	allowPrivateTargets string
}

// openStore connects and returns a store with the keyring and guard configured.
func (a *app) openStore(ctx context.Context, opts *storeOpts) (*outbox.Store, *pgxpool.Pool, error) {
	if opts == nil {
		opts = &storeOpts{}
	}
	keyring, err := a.keyring()
	if err != nil {
		return nil, nil, err
	}
	g, err := guard(opts.allowPrivateTargets)
	if err != nil {
		return nil, nil, err
	}
	pool, err := a.connect(ctx)
	if err != nil {
		return nil, nil, err
	}
	store, err := outbox.NewStore(pool, &outbox.StoreConfig{Schema: a.schema, Keyring: keyring, Guard: g})
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return store, pool, nil
}

func newVersionCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print outboxd's version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			info, _ := debug.ReadBuildInfo()
			goVersion := "unknown"
			if info != nil {
				goVersion = info.GoVersion
			}
			fmt.Fprintf(a.stdout, "outboxd %s (%s)\n", outboxdVersion(), goVersion)
			return nil
		},
	}
}

// osApp is the app for the real process.
func osApp() *app {
	return &app{lookupEnv: os.LookupEnv, stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, stdinIsTerminal: func() bool {
		info, err := os.Stdin.Stat()
		return err == nil && info.Mode()&os.ModeCharDevice != 0
	}}
}

// confirm asks a person to confirm a destructive step (what) on the terminal. yes
// (--yes) confirms without asking; without it, where stdin is not a terminal,
// confirm refuses.
func (a *app) confirm(question, what string, yes bool) error {
	if yes {
		return nil
	}
	if a.stdinIsTerminal == nil || !a.stdinIsTerminal() {
		return fmt.Errorf("%s: pass --yes to confirm (stdin is not a terminal, so outboxd cannot ask)", what)
	}
	fmt.Fprintf(a.stderr, "%s [y/N] ", question)
	answer, err := bufio.NewReader(a.stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read the answer: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return nil
	}
	return errors.New("not confirmed: nothing was changed")
}

// adminTokens reads OUTBOXD_API_TOKEN (one token, or several separated by commas)
// and, if given, a file with one token per line (# starts a comment).
func (a *app) adminTokens(file string) ([]string, error) {
	var tokens []string
	if value, ok := a.lookupEnv("OUTBOXD_API_TOKEN"); ok {
		for _, token := range strings.Split(value, ",") {
			if token = strings.TrimSpace(token); token != "" {
				tokens = append(tokens, token)
			}
		}
	}
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--api-token-file: %w", err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				tokens = append(tokens, line)
			}
		}
	}
	for _, token := range tokens {
		if len(token) < 16 {
			return nil, errors.New("an admin API token must be at least 16 characters (try: openssl rand -hex 32)")
		}
	}
	return tokens, nil
}

// tokenOrganization resolves organization tokens through the store.
func tokenOrganization(store *outbox.Store) func(ctx context.Context, token string) (string, error) {
	return func(ctx context.Context, token string) (string, error) {
		t, err := store.TokenAuthenticate(ctx, token)
		if err != nil {
			return "", err
		}
		return t.OrganizationID, nil
	}
}
