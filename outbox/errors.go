package outbox

import (
	"errors"
	"fmt"
	"strings"

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

// constraintFields maps check constraints to the input field they guard, for
// violations raised by a plain constraint rather than by outbox.events_validate.
var constraintFields = map[string]string{
	"events_type_format":                   "type",
	"events_payload_object":                "payload",
	"events_payload_size":                  "payload",
	"events_organization_id_length":        "organization_id",
	"events_agent_id_length":               "agent_id",
	"events_idempotency_key_length":        "idempotency_key",
	"subscriptions_url_scheme":             "url",
	"subscriptions_event_types_valid":      "event_types",
	"subscriptions_organization_id_length": "organization_id",
	"subscriptions_agent_id_length":        "agent_id",
	"subscriptions_description_length":     "description",
	"subscriptions_retry_schedule_valid":   "retry_schedule",
	"subscriptions_headers_object":         "headers",
	"subscriptions_rate_limit":             "rate_limit",
	"subscriptions_max_in_flight":          "max_in_flight",
	"subscriptions_ordering":               "ordering",
	"subscriptions_on_dead":                "on_dead",
	"events_type_reserved":                 "type",
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
			field := pgErr.ColumnName
			if field == "" {
				field = constraintFields[pgErr.ConstraintName]
			}
			return &ValidationError{Field: field, Message: pgErr.Message, Hint: pgErr.Hint}
		case "23502": // not_null_violation
			return &ValidationError{Field: pgErr.ColumnName, Message: "must not be null"}
		}
	}
	return fmt.Errorf("%s: %w", op, err)
}
