package outbox

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/outboxd/outboxd/outbox/secretbox"
)

// ErrNotFound is returned when an event, subscription or delivery does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when an operation cannot run in the current state of
// its target (for example retrying a delivery while it is being attempted).
var ErrConflict = errors.New("conflict")

// ErrNoEncryptionKey is returned when a secret must be stored or read but no
// encryption key is configured. Its message says how to make one.
var ErrNoEncryptionKey = secretbox.ErrNoKey

// ValidationError is bad input: it names the field at fault and says what is wrong.
// Nothing was changed.
type ValidationError struct {
	Field   string // the input field, for example "type" or "url"
	Message string // what is wrong, for a person
	Hint    string // how to fix it, when there is advice
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	if e.Hint != "" {
		b.WriteString(" (")
		b.WriteString(e.Hint)
		b.WriteString(")")
	}
	return b.String()
}

func invalid(field, format string, args ...any) *ValidationError {
	return &ValidationError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// constraint is what a named rule of outboxd's tables guards: the input field,
// by its API name, and the rule as a person reads it, limits included.
type constraint struct {
	field string
	rule  string
}

// constraints maps every check constraint of outboxd's tables (and the names the
// events trigger raises) to its field and rule, so that a refusal by the
// database reads the same as the store's own check. A test fails when a
// constraint in the migrations has no entry here.
var constraints = map[string]constraint{
	"settings_singleton":                     {"settings", "holds exactly one row"},
	"settings_max_payload_bytes":             {"max_payload_bytes", "2 to 67108864 bytes"},
	"settings_event_id_tag":                  {"event_id_tag", "8 lower-case hex digits"},
	"settings_event_partition_interval":      {"event_partition_interval", "whole minutes that divide a day, from 1 minute to 1 day"},
	"events_type_format":                     {"type", "two or more dot-separated words of a-z, 0-9 and _, at most 200 characters, like agent.step.completed"},
	"events_type_reserved":                   {"type", "outboxd.* types are published by outboxd itself"},
	"events_payload_object":                  {"payload", "must be a JSON object"},
	"events_payload_size":                    {"payload", "larger than outbox.settings.max_payload_bytes"},
	"events_organization_id_length":          {"organization_id", "1 to 255 characters"},
	"events_agent_id_length":                 {"agent_id", "1 to 255 characters"},
	"events_idempotency_key_length":          {"idempotency_key", "1 to 255 characters"},
	"subscriptions_url_scheme":               {"url", "an http or https URL of at most 2048 characters"},
	"subscriptions_event_types_valid":        {"event_types", "1 to 100 patterns, each an event type (agent.step.completed), a prefix (agent.step.*) or *"},
	"subscriptions_organization_id_length":   {"organization_id", "1 to 255 characters"},
	"subscriptions_agent_id_length":          {"agent_id", "1 to 255 characters"},
	"subscriptions_description_length":       {"description", "at most 1024 characters"},
	"subscriptions_headers_object":           {"headers", "must be a JSON object of names and values"},
	"subscriptions_headers_sealed":           {"headers", "sealed values need both their key id and their ciphertext"},
	"subscriptions_header_values":            {"headers", "every header name needs its value"},
	"subscriptions_retry_schedule_valid":     {"retry_schedule", "at most 50 delays, each longer than 0"},
	"subscriptions_agent_webhook_agent":      {"agent_id", "required for an agent's webhook"},
	"subscriptions_rate_limit":               {"rate_limit", "1 to 100000 deliveries per second (0 for no limit)"},
	"subscriptions_max_in_flight":            {"max_in_flight", "1 to 10000 deliveries at once (0 for the daemon's default)"},
	"subscriptions_ordering":                 {"ordering", "none or agent"},
	"subscriptions_on_dead":                  {"on_dead", "block or skip"},
	"api_tokens_organization_id_length":      {"organization_id", "1 to 255 characters"},
	"api_tokens_name_length":                 {"name", "at most 200 characters"},
	"web_sessions_organization_id_length":    {"organization_id", "1 to 255 characters"},
	"web_sessions_agent_id_length":           {"agent_id", "1 to 255 characters"},
	"web_sessions_user_agent_length":         {"user_agent", "at most 512 characters"},
	"web_sessions_expiry":                    {"lifetime", "must be positive"},
	"web_sessions_agent_in_organization":     {"agent_id", "only for an organization's session"},
	"web_sessions_admin_credential":          {"admin_token_digest", "required for an admin session (no organization_id)"},
	"portal_sessions_organization_id_length": {"organization_id", "1 to 255 characters"},
	"portal_sessions_agent_id_length":        {"agent_id", "1 to 255 characters"},
	"portal_sessions_created_by_length":      {"created_by", "at most 255 characters"},
	"portal_sessions_expiry":                 {"expires_in", "must be positive"},
}

// violation is the ValidationError for breaking the named constraint: what the
// store answers when it catches the input itself, and what the database's
// refusal translates to.
func violation(name string) *ValidationError {
	c := constraints[name]
	return &ValidationError{Field: c.field, Message: c.rule}
}

// checkText validates a text field before the database sees it: valid UTF-8,
// no NUL (Postgres text cannot hold it), and at most max characters (as
// Postgres' length() counts them) under the named constraint.
func checkText(field, value string, max int, constraintName string) error {
	if err := checkEncoding(field, value); err != nil {
		return err
	}
	if utf8.RuneCountInString(value) > max {
		return violation(constraintName)
	}
	return nil
}

// checkEncoding refuses what Postgres text cannot hold: invalid UTF-8 and NUL.
func checkEncoding(field, value string) error {
	switch {
	case !utf8.ValidString(value):
		return invalid(field, "must be valid UTF-8")
	case strings.IndexByte(value, 0) >= 0:
		return invalid(field, `must not contain NUL characters (\u0000)`)
	}
	return nil
}

// checkID validates an optional identifier (organization, agent, idempotency
// key): empty means none, otherwise 1 to 255 characters.
func checkID(field, value, constraintName string) error {
	return checkText(field, value, 255, constraintName)
}

// translateError maps database errors to outboxd's: no rows to ErrNotFound, check
// violations and bad values to *ValidationError. Others are wrapped with op.
func translateError(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23514", "22023", "22P02", "22001": // check_violation, invalid_parameter_value, invalid_text_representation, string_data_right_truncation
			if c, ok := constraints[pgErr.ConstraintName]; ok && pgErr.ColumnName == "" {
				// A plain constraint: Postgres names only the constraint.
				return &ValidationError{Field: c.field, Message: c.rule}
			}
			// Raised by outboxd's own SQL, which names the column and says what
			// was wrong with the value.
			message := pgErr.Message
			if pgErr.Detail != "" {
				message += ": " + pgErr.Detail
			}
			return &ValidationError{Field: pgErr.ColumnName, Message: message, Hint: pgErr.Hint}
		case "22P05", "22021": // untranslatable_character (\u0000 in jsonb), character_not_in_repertoire (NUL or bad UTF-8 in text)
			return &ValidationError{Field: pgErr.ColumnName, Message: "must not contain NUL characters (\\u0000) and must be valid UTF-8"}
		case "23502": // not_null_violation
			return &ValidationError{Field: pgErr.ColumnName, Message: "must not be null"}
		}
	}
	return fmt.Errorf("%s: %w", op, err)
}
