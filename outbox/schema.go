package outbox

import (
	"context"
	"fmt"
	"regexp"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultSchema is the Postgres schema that holds outboxd's tables and River's.
const DefaultSchema = "outbox"

var (
	schemaNamePattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,39}$`)
	qualifierPattern  = regexp.MustCompile(`\boutbox\.`)
)

// Keywords that cannot name a schema without quotes (Postgres' reserved and
// type/function-name keywords). Names are kept unquoted everywhere, including in
// LISTEN channels, so these are refused.
var sqlKeywords = map[string]bool{}

func init() {
	for _, w := range []string{
		"all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric", "authorization",
		"binary", "both", "case", "cast", "check", "collate", "collation", "column", "concurrently",
		"constraint", "create", "cross", "current_catalog", "current_date", "current_role",
		"current_schema", "current_time", "current_timestamp", "current_user", "default", "deferrable",
		"desc", "distinct", "do", "else", "end", "except", "false", "fetch", "for", "foreign", "freeze",
		"from", "full", "grant", "group", "having", "ilike", "in", "initially", "inner", "intersect",
		"into", "is", "isnull", "join", "lateral", "leading", "left", "like", "limit", "localtime",
		"localtimestamp", "natural", "not", "notnull", "null", "offset", "on", "only", "or", "order",
		"outer", "overlaps", "placing", "primary", "references", "returning", "right", "select",
		"session_user", "similar", "some", "symmetric", "system_user", "table", "tablesample", "then",
		"to", "trailing", "true", "union", "unique", "user", "using", "variadic", "verbose", "when",
		"where", "window", "with",
	} {
		sqlKeywords[w] = true
	}
}

// ValidateSchemaName checks a schema name: lower-case letters, digits and
// underscores, starting with a letter or underscore, at most 40 characters, not a
// reserved word and not pg_*.
func ValidateSchemaName(name string) error {
	switch {
	case !schemaNamePattern.MatchString(name):
		return fmt.Errorf("schema %q: use lower-case letters, digits and _, starting with a letter, at most 40 characters", name)
	case sqlKeywords[name]:
		return fmt.Errorf("schema %q is a reserved SQL word; choose another name", name)
	case len(name) >= 3 && name[:3] == "pg_":
		return fmt.Errorf("schema %q: names starting with pg_ are reserved by Postgres", name)
	}
	return nil
}

// RewriteSchema points SQL written against the default schema ("outbox.events") at
// schema instead. Every runtime query and migration is written with the "outbox."
// qualifier and passes through here, so the caller's search_path never matters.
func RewriteSchema(sql, schema string) string {
	if schema == DefaultSchema || schema == "" {
		return sql
	}
	return qualifierPattern.ReplaceAllLiteralString(sql, schema+".")
}

// Executor runs SQL: a pgx.Tx, a *pgx.Conn or a *pgxpool.Pool. The …Tx functions
// take one so that they run inside the caller's transaction.
type Executor interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// schemaExecutor rewrites each query for the configured schema, once per query text.
type schemaExecutor struct {
	exec   Executor
	schema string
	cache  *sync.Map
}

func (s *schemaExecutor) sql(query string) string {
	if s.schema == DefaultSchema {
		return query
	}
	if rewritten, ok := s.cache.Load(query); ok {
		return rewritten.(string) //nolint:forcetypeassert // only strings are stored
	}
	rewritten := RewriteSchema(query, s.schema)
	s.cache.Store(query, rewritten)
	return rewritten
}

func (s *schemaExecutor) Exec(ctx context.Context, query string, args ...any) (pgconn.CommandTag, error) {
	return s.exec.Exec(ctx, s.sql(query), args...)
}

func (s *schemaExecutor) Query(ctx context.Context, query string, args ...any) (pgx.Rows, error) {
	return s.exec.Query(ctx, s.sql(query), args...)
}

func (s *schemaExecutor) QueryRow(ctx context.Context, query string, args ...any) pgx.Row {
	return s.exec.QueryRow(ctx, s.sql(query), args...)
}
