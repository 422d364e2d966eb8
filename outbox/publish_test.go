package outbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/outboxtest"
)

var eventIDPattern = regexp.MustCompile(`^evt_[0-9a-f]{32}$`)

// idMillis decodes the creation time (milliseconds since the epoch) in a public id.
func idMillis(t *testing.T, id, prefix string) int64 {
	t.Helper()
	hex, ok := strings.CutPrefix(id, prefix)
	require.True(t, ok, id)
	require.Len(t, hex, 32, id)
	ms, err := strconv.ParseInt(hex[:12], 16, 64)
	require.NoError(t, err)
	return ms
}

// payloadOfSize returns a JSON object whose jsonb text form ({"d": "xxx…"}) is
// exactly size bytes: the unit the payload limit is measured in.
func payloadOfSize(size int) json.RawMessage {
	return json.RawMessage(`{"d":"` + strings.Repeat("x", size-len(`{"d": ""}`)) + `"}`)
}

func TestPublish(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		ctx   context.Context
		store *outbox.Store
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		return &testBundle{ctx: context.Background(), store: outboxtest.Store(t)}
	}

	t.Run("ReturnsEventWithPublicID", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		before := time.Now()
		event, err := b.store.Publish(b.ctx, &outbox.PublishParams{
			Type:           "agent.step.completed",
			AgentID:        "agent-123",
			OrganizationID: "org-1",
			IdempotencyKey: "key-1",
			Payload:        json.RawMessage(`{"step_id":"step-456","tokens":42}`),
		})
		require.NoError(t, err)
		require.Regexp(t, eventIDPattern, event.ID)
		require.Positive(t, event.Seq)
		require.Equal(t, "agent.step.completed", event.Type)
		require.Equal(t, "agent-123", event.AgentID)
		require.Equal(t, "org-1", event.OrganizationID)
		require.Equal(t, "key-1", event.IdempotencyKey)
		require.JSONEq(t, `{"step_id":"step-456","tokens":42}`, string(event.Payload))
		require.WithinDuration(t, before, event.CreatedAt, time.Minute)
		require.Nil(t, event.DispatchedAt)
		require.Nil(t, event.FannedOutAt)

		// The id carries its creation time in milliseconds.
		ms := idMillis(t, event.ID, "evt_")
		require.GreaterOrEqual(t, ms, event.CreatedAt.UnixMilli())
		require.LessOrEqual(t, ms, time.Now().UnixMilli()+1)

		got, err := b.store.EventGet(b.ctx, event.ID)
		require.NoError(t, err)
		require.Equal(t, event.ID, got.ID)
		require.Equal(t, event.Seq, got.Seq)
		require.Equal(t, event.Type, got.Type)
		require.Equal(t, event.AgentID, got.AgentID)
		require.Equal(t, event.OrganizationID, got.OrganizationID)
		require.Equal(t, event.IdempotencyKey, got.IdempotencyKey)
		require.JSONEq(t, string(event.Payload), string(got.Payload))
		require.True(t, event.CreatedAt.Equal(got.CreatedAt))
	})

	t.Run("OptionalFieldsStayEmpty", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		event, err := b.store.Publish(b.ctx, &outbox.PublishParams{Type: "agent.run.started"})
		require.NoError(t, err)
		require.Empty(t, event.AgentID)
		require.Empty(t, event.OrganizationID)
		require.Empty(t, event.IdempotencyKey)

		// Empty strings are stored as NULL, not as "".
		var agent, org, key *string
		err = outboxtest.Pool(t).QueryRow(b.ctx, fmt.Sprintf("SELECT agent_id, organization_id, idempotency_key FROM %s.event($1)", b.store.Schema()), event.ID).Scan(&agent, &org, &key)
		require.NoError(t, err)
		require.Nil(t, agent)
		require.Nil(t, org)
		require.Nil(t, key)
	})

	t.Run("MissingPayloadIsEmptyObject", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		for _, payload := range []json.RawMessage{nil, {}} {
			event, err := b.store.Publish(b.ctx, &outbox.PublishParams{Type: "agent.step.completed", Payload: payload})
			require.NoError(t, err)
			require.JSONEq(t, `{}`, string(event.Payload))
			got, err := b.store.EventGet(b.ctx, event.ID)
			require.NoError(t, err)
			require.JSONEq(t, `{}`, string(got.Payload))
		}
	})

	t.Run("PayloadRoundTrips", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		payload := `{"text":"héllo \"wörld\" ✓","n":-1.5e3,"big":12345678901234567,"list":[1,"two",null,{"three":3}],"nested":{"ok":true,"none":null},"empty":{}}`
		event := outboxtest.Event(b.ctx, t, b.store, &outboxtest.EventOpts{Payload: json.RawMessage(payload)})
		require.JSONEq(t, payload, string(event.Payload))
		got, err := b.store.EventGet(b.ctx, event.ID)
		require.NoError(t, err)
		require.JSONEq(t, payload, string(got.Payload))
	})

	t.Run("IDsSortByCreationTime", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		// Publish until the ids span several milliseconds, the resolution of their
		// time prefix. The clock moves on, so this ends.
		var events []*outbox.Event
		distinct := map[int64]bool{}
		for len(distinct) < 4 {
			require.Less(t, len(events), 100_000, "the database clock did not advance")
			event := outboxtest.Event(b.ctx, t, b.store, nil)
			events = append(events, event)
			distinct[idMillis(t, event.ID, "evt_")] = true
		}
		for i := 1; i < len(events); i++ {
			prev, cur := events[i-1], events[i]
			require.Greater(t, cur.Seq, prev.Seq, "seq follows publish order")
			require.NotEqual(t, prev.ID, cur.ID)
			prevMS, curMS := idMillis(t, prev.ID, "evt_"), idMillis(t, cur.ID, "evt_")
			require.LessOrEqual(t, prevMS, curMS, "time prefix never goes back: %s then %s", prev.ID, cur.ID)
			if prevMS < curMS {
				require.Less(t, prev.ID, cur.ID, "an event of a later millisecond sorts after")
			}
		}
	})

	t.Run("ExistsOnlyIfCommitted", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		pool := outboxtest.Pool(t)

		tx := begin(b.ctx, t, pool)
		rolledBack, err := b.store.PublishTx(b.ctx, tx, &outbox.PublishParams{Type: "agent.step.failed", AgentID: "agent-1"})
		require.NoError(t, err)
		require.Regexp(t, eventIDPattern, rolledBack.ID)
		var inside int
		require.NoError(t, tx.QueryRow(b.ctx, fmt.Sprintf("SELECT count(*) FROM %s.event($1)", b.store.Schema()), rolledBack.ID).Scan(&inside))
		require.Equal(t, 1, inside, "visible inside its transaction")
		_, err = b.store.EventGet(b.ctx, rolledBack.ID)
		require.ErrorIs(t, err, outbox.ErrNotFound, "invisible outside before commit")
		require.NoError(t, tx.Rollback(b.ctx))
		_, err = b.store.EventGet(b.ctx, rolledBack.ID)
		require.ErrorIs(t, err, outbox.ErrNotFound)
		require.Zero(t, countRows(b.ctx, t, b.store, "events"))

		tx = begin(b.ctx, t, pool)
		committed, err := b.store.PublishTx(b.ctx, tx, &outbox.PublishParams{Type: "agent.step.completed", AgentID: "agent-1"})
		require.NoError(t, err)
		_, err = b.store.EventGet(b.ctx, committed.ID)
		require.ErrorIs(t, err, outbox.ErrNotFound)
		require.NoError(t, tx.Commit(b.ctx))
		got, err := b.store.EventGet(b.ctx, committed.ID)
		require.NoError(t, err)
		require.Equal(t, committed.Seq, got.Seq)
		require.Equal(t, 1, countRows(b.ctx, t, b.store, "events"))
	})

	t.Run("WithBusinessChangeInOneTransaction", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		pool := outboxtest.Pool(t)
		_, err := pool.Exec(b.ctx, fmt.Sprintf("CREATE TABLE %s.steps (id text PRIMARY KEY)", b.store.Schema()))
		require.NoError(t, err)

		tx := begin(b.ctx, t, pool)
		_, err = tx.Exec(b.ctx, fmt.Sprintf("INSERT INTO %s.steps VALUES ('step-1')", b.store.Schema()))
		require.NoError(t, err)
		event, err := b.store.PublishTx(b.ctx, tx, &outbox.PublishParams{Type: "agent.step.completed", Payload: json.RawMessage(`{"step_id":"step-1"}`)})
		require.NoError(t, err)
		// A later failure in the producer's transaction takes the event with it.
		_, err = tx.Exec(b.ctx, fmt.Sprintf("INSERT INTO %s.steps VALUES ('step-1')", b.store.Schema()))
		require.Error(t, err)
		require.Error(t, tx.Commit(b.ctx), "an aborted transaction does not commit")
		_, err = b.store.EventGet(b.ctx, event.ID)
		require.ErrorIs(t, err, outbox.ErrNotFound)
		require.Zero(t, countRows(b.ctx, t, b.store, "events"))
		require.Zero(t, countRows(b.ctx, t, b.store, "steps"))
	})

	t.Run("EventGetUnknown", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		_, err := b.store.EventGet(b.ctx, "evt_00000000000000000000000000000000")
		require.ErrorIs(t, err, outbox.ErrNotFound)
		_, err = b.store.EventGet(b.ctx, "")
		require.ErrorIs(t, err, outbox.ErrNotFound)
	})
}

func TestPublishValidation(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		ctx   context.Context
		store *outbox.Store
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		return &testBundle{ctx: context.Background(), store: outboxtest.Store(t)}
	}

	tests := []struct {
		name    string
		params  outbox.PublishParams
		field   string
		message string
		hint    string
	}{
		{"TypeUpperCase", outbox.PublishParams{Type: "Agent.Step"}, "type", `invalid event type 'Agent.Step'`, "agent.step.completed"},
		{"TypeOneWord", outbox.PublishParams{Type: "agent"}, "type", `invalid event type 'agent'`, "two or more dot-separated words"},
		{"TypeEmptyWord", outbox.PublishParams{Type: "agent..step"}, "type", `invalid event type 'agent..step'`, "a-z, 0-9 and _"},
		{"TypePunctuation", outbox.PublishParams{Type: "agent.step!"}, "type", `invalid event type 'agent.step!'`, "a-z, 0-9 and _"},
		{"TypeTrailingDot", outbox.PublishParams{Type: "agent.step."}, "type", `invalid event type 'agent.step.'`, ""},
		{"TypeWildcard", outbox.PublishParams{Type: "agent.*"}, "type", `invalid event type 'agent.*'`, ""},
		{"TypeSpace", outbox.PublishParams{Type: "agent.step completed"}, "type", `invalid event type`, ""},
		{"TypeTooLong", outbox.PublishParams{Type: "a." + strings.Repeat("b", 199)}, "type", `invalid event type`, "at most 200 characters"},
		{"TypeEmpty", outbox.PublishParams{Type: ""}, "type", `invalid event type ''`, ""},
		{"PayloadArray", outbox.PublishParams{Type: "a.b", Payload: json.RawMessage(`[1,2]`)}, "payload", "event payload must be a JSON object, not array", `{"value": ...}`},
		{"PayloadString", outbox.PublishParams{Type: "a.b", Payload: json.RawMessage(`"hello"`)}, "payload", "must be a JSON object, not string", ""},
		{"PayloadNumber", outbox.PublishParams{Type: "a.b", Payload: json.RawMessage(`42`)}, "payload", "must be a JSON object, not number", ""},
		{"PayloadBoolean", outbox.PublishParams{Type: "a.b", Payload: json.RawMessage(`true`)}, "payload", "must be a JSON object, not boolean", ""},
		{"PayloadNull", outbox.PublishParams{Type: "a.b", Payload: json.RawMessage(`null`)}, "payload", "must be a JSON object, not null", ""},
		{"PayloadInvalidJSON", outbox.PublishParams{Type: "a.b", Payload: json.RawMessage(`{"a":`)}, "payload", "not valid JSON", ""},
		{"PayloadNotJSONAtAll", outbox.PublishParams{Type: "a.b", Payload: json.RawMessage(`step-1`)}, "payload", "not valid JSON", ""},
		{"PayloadTrailingGarbage", outbox.PublishParams{Type: "a.b", Payload: json.RawMessage(`{} {}`)}, "payload", "not valid JSON", ""},
		{"PayloadOverDefaultLimit", outbox.PublishParams{Type: "a.b", Payload: payloadOfSize(262145)}, "payload", "event payload is 262145 bytes, over the limit of 262144 bytes", "max_payload_bytes"},
		{"AgentIDTooLong", outbox.PublishParams{Type: "a.b", AgentID: strings.Repeat("a", 256)}, "agent_id", "1 to 255 characters", ""},
		{"AgentIDNUL", outbox.PublishParams{Type: "a.b", AgentID: "a\x00"}, "agent_id", `must not contain NUL characters (\u0000)`, ""},
		{"TypeNUL", outbox.PublishParams{Type: "a.b\x00"}, "type", `must not contain NUL characters (\u0000)`, ""},
		{"TypeInvalidUTF8", outbox.PublishParams{Type: "a.b\xff"}, "type", "must be valid UTF-8", ""},
		{"OrganizationIDTooLong", outbox.PublishParams{Type: "a.b", OrganizationID: strings.Repeat("o", 256)}, "organization_id", "1 to 255 characters", ""},
		{"IdempotencyKeyTooLong", outbox.PublishParams{Type: "a.b", IdempotencyKey: strings.Repeat("k", 256)}, "idempotency_key", "1 to 255 characters", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			b := setup(t)
			outboxtest.Event(b.ctx, t, b.store, nil) // one good row, which must stay the only one

			event, err := b.store.Publish(b.ctx, &tt.params)
			require.Nil(t, event)
			verr := requireValidationError(t, err, tt.field, tt.message)
			require.Contains(t, verr.Hint, tt.hint)
			require.Equal(t, 1, countRows(b.ctx, t, b.store, "events"), "bad input changes nothing")

			// The same inside a caller's transaction.
			tx := begin(b.ctx, t, outboxtest.Pool(t))
			_, err = b.store.PublishTx(b.ctx, tx, &tt.params)
			requireValidationError(t, err, tt.field, tt.message)
			require.NoError(t, tx.Rollback(b.ctx))
			require.Equal(t, 1, countRows(b.ctx, t, b.store, "events"))
		})
	}

	t.Run("LimitsAreInclusive", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		for _, params := range []outbox.PublishParams{
			{Type: "a." + strings.Repeat("b", 198)}, // 200 characters
			{Type: "a_1.b_2.c_3"},
			{Type: "agent.step.completed", Payload: payloadOfSize(262144)},
			{Type: "a.b", AgentID: strings.Repeat("a", 255), OrganizationID: strings.Repeat("o", 255), IdempotencyKey: strings.Repeat("k", 255)},
		} {
			_, err := b.store.Publish(b.ctx, &params)
			require.NoError(t, err, params.Type)
		}
		require.Equal(t, 4, countRows(b.ctx, t, b.store, "events"))
	})

	t.Run("LoweredPayloadLimit", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		_, err := outboxtest.Pool(t).Exec(b.ctx, fmt.Sprintf("UPDATE %s.settings SET max_payload_bytes = 100", b.store.Schema()))
		require.NoError(t, err)

		_, err = b.store.Publish(b.ctx, &outbox.PublishParams{Type: "a.b", Payload: payloadOfSize(200)})
		requireValidationError(t, err, "payload", "event payload is 200 bytes, over the limit of 100 bytes")
		_, err = b.store.Publish(b.ctx, &outbox.PublishParams{Type: "a.b", Payload: payloadOfSize(101)})
		requireValidationError(t, err, "payload", "over the limit of 100 bytes")
		require.Zero(t, countRows(b.ctx, t, b.store, "events"))

		_, err = b.store.Publish(b.ctx, &outbox.PublishParams{Type: "a.b", Payload: payloadOfSize(50)})
		require.NoError(t, err)
		_, err = b.store.Publish(b.ctx, &outbox.PublishParams{Type: "a.b", Payload: payloadOfSize(100)})
		require.NoError(t, err)
		require.Equal(t, 2, countRows(b.ctx, t, b.store, "events"))
	})

	t.Run("FailureAbortsCallersTransaction", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		tx := begin(b.ctx, t, outboxtest.Pool(t))
		_, err := b.store.PublishTx(b.ctx, tx, &outbox.PublishParams{Type: "a.b"})
		require.NoError(t, err)
		_, err = b.store.PublishTx(b.ctx, tx, &outbox.PublishParams{Type: "Bad"})
		requireValidationError(t, err, "type", "invalid event type")
		require.Error(t, tx.Commit(b.ctx))
		require.Zero(t, countRows(b.ctx, t, b.store, "events"), "nothing of the failed transaction survives")
	})

	t.Run("InvalidJSONNeverReachesTheDatabase", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		tx := begin(b.ctx, t, outboxtest.Pool(t))
		_, err := b.store.PublishTx(b.ctx, tx, &outbox.PublishParams{Type: "a.b", Payload: json.RawMessage(`{`)})
		requireValidationError(t, err, "payload", "not valid JSON")
		// The transaction is still usable: the bad payload was refused in Go.
		_, err = b.store.PublishTx(b.ctx, tx, &outbox.PublishParams{Type: "a.b"})
		require.NoError(t, err)
		require.NoError(t, tx.Commit(b.ctx))
		require.Equal(t, 1, countRows(b.ctx, t, b.store, "events"))
	})
}

func TestPublishSQL(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		ctx    context.Context
		store  *outbox.Store
		pool   *pgxpool.Pool
		schema string
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		store := outboxtest.Store(t)
		return &testBundle{ctx: context.Background(), store: store, pool: outboxtest.Pool(t), schema: store.Schema()}
	}

	t.Run("PlainInsertDefaultsTheRest", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		before := time.Now()
		var (
			eventID      string
			seq          int64
			createdAt    time.Time
			dispatchedAt *time.Time
		)
		err := b.pool.QueryRow(b.ctx, fmt.Sprintf(
			`INSERT INTO %[1]s.events (type, agent_id, organization_id, payload)
			VALUES ('agent.step.completed', 'agent-123', 'org-1', '{"step_id":"step-456"}')
			RETURNING %[1]s.event_id(id, created_at), id, created_at, dispatched_at`, b.schema)).Scan(&eventID, &seq, &createdAt, &dispatchedAt)
		require.NoError(t, err)
		require.Regexp(t, eventIDPattern, eventID)
		require.WithinDuration(t, before, createdAt, time.Minute)
		require.Nil(t, dispatchedAt)

		event, err := b.store.EventGet(b.ctx, eventID)
		require.NoError(t, err)
		require.Equal(t, seq, event.Seq)
		require.Equal(t, "agent.step.completed", event.Type)
		require.Equal(t, "agent-123", event.AgentID)
		require.Equal(t, "org-1", event.OrganizationID)
		require.Empty(t, event.IdempotencyKey)
		require.JSONEq(t, `{"step_id":"step-456"}`, string(event.Payload))
	})

	t.Run("PlainInsertOnlyType", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		var eventID string
		err := b.pool.QueryRow(b.ctx, fmt.Sprintf(`INSERT INTO %[1]s.events (type) VALUES ('agent.run.started') RETURNING %[1]s.event_id(id, created_at)`, b.schema)).Scan(&eventID)
		require.NoError(t, err)
		event, err := b.store.EventGet(b.ctx, eventID)
		require.NoError(t, err)
		require.JSONEq(t, `{}`, string(event.Payload))
	})

	t.Run("PlainInsertRejectsBadInput", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		tests := []struct {
			name       string
			eventType  any
			payload    any
			column     string
			constraint string
			message    string
			hint       string
		}{
			{"TypeUpperCase", "Agent.Step", "{}", "type", "events_type_format", "invalid event type 'Agent.Step'", "like agent.step.completed"},
			{"TypeOneWord", "agent", "{}", "type", "events_type_format", "invalid event type 'agent'", "two or more dot-separated words"},
			{"TypeTooLong", "a." + strings.Repeat("b", 199), "{}", "type", "events_type_format", "invalid event type", "at most 200 characters"},
			{"PayloadArray", "a.b", "[1,2]", "payload", "events_payload_object", "event payload must be a JSON object, not array", "Wrap the value in an object"},
			{"PayloadString", "a.b", `"x"`, "payload", "events_payload_object", "must be a JSON object, not string", ""},
			{"PayloadNumber", "a.b", "7", "payload", "events_payload_object", "must be a JSON object, not number", ""},
			{"PayloadJSONNull", "a.b", "null", "payload", "events_payload_object", "must be a JSON object, not null", ""},
			{"PayloadOverLimit", "a.b", string(payloadOfSize(262145)), "payload", "events_payload_size", "event payload is 262145 bytes, over the limit of 262144 bytes", b.schema + ".settings.max_payload_bytes"},
		}
		for _, tt := range tests {
			_, err := b.pool.Exec(b.ctx, fmt.Sprintf("INSERT INTO %s.events (type, payload) VALUES ($1, $2::jsonb)", b.schema), tt.eventType, tt.payload)
			pgErr := requirePgError(t, err)
			require.Equal(t, "23514", pgErr.Code, tt.name)
			require.Equal(t, tt.column, pgErr.ColumnName, tt.name)
			require.Equal(t, tt.constraint, pgErr.ConstraintName, tt.name)
			require.Contains(t, pgErr.Message, tt.message, tt.name)
			require.Contains(t, pgErr.Hint, tt.hint, tt.name)
		}
		// NULL where a value is required: the not-null constraint names the column.
		for _, null := range []struct{ column, insert string }{
			{"type", "INSERT INTO %s.events (type, payload) VALUES (NULL, '{}')"},
			{"payload", "INSERT INTO %s.events (type, payload) VALUES ('a.b', NULL)"},
		} {
			_, err := b.pool.Exec(b.ctx, fmt.Sprintf(null.insert, b.schema))
			pgErr := requirePgError(t, err)
			require.Equal(t, "23502", pgErr.Code, null.column)
			require.Equal(t, null.column, pgErr.ColumnName)
		}
		_, err := b.pool.Exec(b.ctx, fmt.Sprintf("INSERT INTO %s.events (type, payload) VALUES ('a.b', 'not json')", b.schema))
		require.Equal(t, "22P02", requirePgError(t, err).Code, "invalid JSON text")
		_, err = b.pool.Exec(b.ctx, fmt.Sprintf("INSERT INTO %s.events (type, agent_id) VALUES ('a.b', '')", b.schema))
		require.Equal(t, "events_agent_id_length", requirePgError(t, err).ConstraintName, "an empty agent id is refused, NULL means none")
		require.Zero(t, countRows(b.ctx, t, b.store, "events"))
	})

	t.Run("PlainInsertCannotSetInternalColumns", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		tests := []struct {
			name    string
			insert  string // %s is the schema
			code    string
			column  string
			message string
			hint    string
		}{
			// id is an identity column: Postgres refuses a value for it.
			{"ID", "INSERT INTO %s.events (id, type) VALUES (1, 'a.b')", "428C9", "", `cannot insert a non-DEFAULT value into column "id"`, ""},
			{"IDNull", "INSERT INTO %s.events (id, type) VALUES (NULL, 'a.b')", "428C9", "", `cannot insert a non-DEFAULT value into column "id"`, ""},
			// Insisting, a position Postgres has not handed out yet is refused: it
			// would later be another event's.
			{"IDOverridingSystemValue", "INSERT INTO %s.events (id, type) OVERRIDING SYSTEM VALUE VALUES (1000000, 'a.b')", "428C9", "id", "cannot set id", "Leave id out"},
			// There is no event_id to set: the id is made from the position and time.
			{"EventID", "INSERT INTO %s.events (event_id, type) VALUES ('evt_chosen_by_producer', 'a.b')", "42703", "", `column "event_id" of relation "events" does not exist`, ""},
			{"LegacyEventID", "INSERT INTO %s.events (legacy_event_id, type) VALUES ('evt_0190a1b2c3d4e5f60718293a4b5c6d7e', 'a.b')", "428C9", "legacy_event_id", "cannot set legacy_event_id", ".event_id(id, created_at)"},
			{"DispatchedAt", "INSERT INTO %s.events (type, payload, dispatched_at) VALUES ('a.b', '{}', now())", "428C9", "dispatched_at", "cannot set dispatched_at: outboxd sets it when the relay claims the event", "Leave dispatched_at out"},
			{"FannedOutAt", "INSERT INTO %s.events (type, fanned_out_at) VALUES ('a.b', now())", "428C9", "fanned_out_at", "cannot set fanned_out_at: outboxd sets it when it creates the event's deliveries", "Leave fanned_out_at out"},
			{"OneBadRowOfMany", "INSERT INTO %s.events (type, dispatched_at) VALUES ('a.b', NULL), ('a.c', now())", "428C9", "dispatched_at", "cannot set dispatched_at", ""},
		}
		for _, tt := range tests {
			_, err := b.pool.Exec(b.ctx, fmt.Sprintf(tt.insert, b.schema))
			pgErr := requirePgError(t, err)
			require.Equal(t, tt.code, pgErr.Code, tt.name)
			require.Contains(t, pgErr.Message, tt.message, tt.name)
			if tt.column != "" {
				require.Equal(t, tt.column, pgErr.ColumnName, tt.name)
				require.Equal(t, "events", pgErr.TableName, tt.name)
				require.Equal(t, b.schema, pgErr.SchemaName, tt.name)
				require.Contains(t, pgErr.Hint, tt.hint, tt.name)
			}
		}
		require.Zero(t, countRows(b.ctx, t, b.store, "events"))

		// A refused id never reaches the table, so it cannot collide with the
		// position a later event is given.
		event, err := b.store.Publish(b.ctx, &outbox.PublishParams{Type: "a.b"})
		require.NoError(t, err)
		require.Less(t, event.Seq, int64(1000000))
	})

	t.Run("PlainInsertAssignsInternalColumns", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		// DEFAULT leaves the choice to outboxd, as leaving the column out does.
		rows, err := b.pool.Query(b.ctx, fmt.Sprintf(`INSERT INTO %[1]s.events (id, type, dispatched_at, fanned_out_at)
			VALUES (DEFAULT, 'a.b', DEFAULT, DEFAULT), (DEFAULT, 'a.c', NULL, NULL)
			RETURNING id, %[1]s.event_id(id, created_at), dispatched_at, fanned_out_at`, b.schema))
		require.NoError(t, err)
		var seqs []int64
		for rows.Next() {
			var (
				seq                   int64
				eventID               string
				dispatched, fannedOut *time.Time
			)
			require.NoError(t, rows.Scan(&seq, &eventID, &dispatched, &fannedOut))
			require.Regexp(t, eventIDPattern, eventID)
			require.Nil(t, dispatched)
			require.Nil(t, fannedOut)
			seqs = append(seqs, seq)
		}
		require.NoError(t, rows.Err())
		require.Len(t, seqs, 2)
		require.Less(t, seqs[0], seqs[1], "positions rise in insert order")

		// COPY, for bulk producers, goes through the same constraints and trigger.
		n, err := b.pool.CopyFrom(b.ctx, pgx.Identifier{b.schema, "events"}, []string{"type", "payload"},
			pgx.CopyFromRows([][]any{{"a.d", map[string]any{"n": 1}}, {"a.e", map[string]any{"n": 2}}}))
		require.NoError(t, err)
		require.EqualValues(t, 2, n)
		var distinct, max int64
		require.NoError(t, b.pool.QueryRow(b.ctx, fmt.Sprintf("SELECT count(DISTINCT %[1]s.event_id(id, created_at)), max(id) FROM %[1]s.events", b.schema)).Scan(&distinct, &max))
		require.EqualValues(t, 4, distinct)
		require.Greater(t, max, seqs[1])

		_, err = b.pool.CopyFrom(b.ctx, pgx.Identifier{b.schema, "events"}, []string{"type", "dispatched_at"},
			pgx.CopyFromRows([][]any{{"a.f", time.Now()}}))
		require.Equal(t, "dispatched_at", requirePgError(t, err).ColumnName)
		_, err = b.pool.CopyFrom(b.ctx, pgx.Identifier{b.schema, "events"}, []string{"type"},
			pgx.CopyFromRows([][]any{{"Not A Type"}}))
		require.Equal(t, "events_type_format", requirePgError(t, err).ConstraintName)
		require.Equal(t, 4, countRows(b.ctx, t, b.store, "events"))
	})

	// A producer role needs no more than before migration 7 made the trigger draw
	// positions from a sequence: schema usage, INSERT on events, SELECT on settings.
	t.Run("LeastPrivilegeProducer", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		role := "t_producer_" + strings.TrimPrefix(b.schema, "t_")
		for _, stmt := range []string{
			"CREATE ROLE " + role + " NOLOGIN",
			"GRANT USAGE ON SCHEMA " + b.schema + " TO " + role,
			"GRANT INSERT ON " + b.schema + ".events TO " + role,
			"GRANT SELECT ON " + b.schema + ".settings TO " + role,
		} {
			_, err := b.pool.Exec(b.ctx, stmt)
			require.NoError(t, err, stmt)
		}
		t.Cleanup(func() {
			_, err := b.pool.Exec(context.Background(), "DROP OWNED BY "+role+"; DROP ROLE "+role)
			require.NoError(t, err)
		})
		tx := begin(b.ctx, t, b.pool)
		_, err := tx.Exec(b.ctx, "SET LOCAL ROLE "+role)
		require.NoError(t, err)
		_, err = tx.Exec(b.ctx, fmt.Sprintf("INSERT INTO %s.events (type, payload) VALUES ('a.b', '{}'), ('a.c', '{}')", b.schema))
		require.NoError(t, err)
		_, err = tx.Exec(b.ctx, fmt.Sprintf("UPDATE %s.events SET dispatched_at = now()", b.schema))
		require.Equal(t, "42501", requirePgError(t, err).Code, "and no UPDATE unless granted")
		require.NoError(t, tx.Rollback(b.ctx))
	})

	t.Run("PlainUpdateCannotChangeAPublishedEvent", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		event, err := b.store.Publish(b.ctx, &outbox.PublishParams{Type: "agent.step.completed", AgentID: "agent-1", OrganizationID: "org-1"})
		require.NoError(t, err)
		tests := []struct{ set, column string }{
			{"type = 'outboxd.subscription.disabled'", "type"},
			{"type = 'agent.step.failed'", "type"},
			{`payload = '{"forged": true}'`, "payload"},
			{"organization_id = 'org-2'", "organization_id"},
			{"agent_id = NULL", "agent_id"},
			{"idempotency_key = 'k'", "idempotency_key"},
			{"legacy_event_id = 'evt_chosen_by_producer'", "legacy_event_id"},
			{"created_at = created_at - interval '1 day'", "created_at"}, // the public id is made from it
			{`dispatched_at = NULL, payload = '{"x": 1}'`, "payload"},
		}
		for _, tt := range tests {
			_, err := b.pool.Exec(b.ctx, fmt.Sprintf("UPDATE %s.events SET %s WHERE id = $1", b.schema, tt.set), event.Seq)
			pgErr := requirePgError(t, err)
			require.Equal(t, "0A000", pgErr.Code, tt.set) // feature_not_supported
			require.Equal(t, tt.column, pgErr.ColumnName, tt.set)
			require.Contains(t, pgErr.Message, "cannot change "+tt.column+" of published event "+event.ID, tt.set)
			require.Contains(t, pgErr.Hint, "Publish a new event", tt.set)
		}
		// id is an identity column, which Postgres itself keeps from changing.
		_, err = b.pool.Exec(b.ctx, fmt.Sprintf("UPDATE %s.events SET id = id + 1000 WHERE id = $1", b.schema), event.Seq)
		require.Equal(t, "428C9", requirePgError(t, err).Code)
		got, err := b.store.EventGet(b.ctx, event.ID)
		require.NoError(t, err)
		require.Equal(t, event, got, "the event is as published")

		// Writing a value back unchanged, and the daemon's own columns, stay possible.
		_, err = b.pool.Exec(b.ctx, fmt.Sprintf(`UPDATE %s.events SET type = type, payload = payload, created_at = created_at,
			dispatched_at = now(), fanned_out_at = now() WHERE id = $1`, b.schema), event.Seq)
		require.NoError(t, err)
		_, err = b.pool.Exec(b.ctx, fmt.Sprintf("DELETE FROM %s.events WHERE id = $1", b.schema), event.Seq)
		require.NoError(t, err)
	})

	t.Run("PublishFunctionReturnsEventID", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		var eventID string
		err := b.pool.QueryRow(b.ctx, fmt.Sprintf(`SELECT %s.publish('agent.step.completed', '{"step_id":"step-456"}', agent_id => 'agent-123')`, b.schema)).Scan(&eventID)
		require.NoError(t, err)
		require.Regexp(t, eventIDPattern, eventID)
		event, err := b.store.EventGet(b.ctx, eventID)
		require.NoError(t, err)
		require.Equal(t, "agent.step.completed", event.Type)
		require.Equal(t, "agent-123", event.AgentID)
		require.Empty(t, event.OrganizationID)
		require.JSONEq(t, `{"step_id":"step-456"}`, string(event.Payload))
	})

	t.Run("PublishFunctionNamedArguments", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		var eventID string
		err := b.pool.QueryRow(b.ctx, fmt.Sprintf(
			`SELECT %s.publish(type => 'agent.run.completed', organization_id => 'org-9', idempotency_key => 'run-1', agent_id => 'agent-9')`, b.schema)).Scan(&eventID)
		require.NoError(t, err)
		event, err := b.store.EventGet(b.ctx, eventID)
		require.NoError(t, err)
		require.Equal(t, "agent.run.completed", event.Type)
		require.Equal(t, "agent-9", event.AgentID)
		require.Equal(t, "org-9", event.OrganizationID)
		require.Equal(t, "run-1", event.IdempotencyKey)
		require.JSONEq(t, `{}`, string(event.Payload), "payload defaults to {}")

		err = b.pool.QueryRow(b.ctx, fmt.Sprintf(`SELECT %s.publish('agent.run.completed', NULL)`, b.schema)).Scan(&eventID)
		require.NoError(t, err)
		event, err = b.store.EventGet(b.ctx, eventID)
		require.NoError(t, err)
		require.JSONEq(t, `{}`, string(event.Payload), "a NULL payload is {}")
	})

	t.Run("PublishFunctionWithParameters", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		var eventID string
		err := b.pool.QueryRow(b.ctx, fmt.Sprintf(`SELECT %s.publish($1, $2::jsonb, organization_id => $3)`, b.schema),
			"agent.step.completed", `{"n":1}`, "org-1").Scan(&eventID)
		require.NoError(t, err)
		event, err := b.store.EventGet(b.ctx, eventID)
		require.NoError(t, err)
		require.Equal(t, "org-1", event.OrganizationID)
		require.JSONEq(t, `{"n":1}`, string(event.Payload))
	})

	t.Run("PublishFunctionRejectsBadInput", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		var eventID string
		err := b.pool.QueryRow(b.ctx, fmt.Sprintf(`SELECT %s.publish('agent', '{}')`, b.schema)).Scan(&eventID)
		pgErr := requirePgError(t, err)
		require.Equal(t, "type", pgErr.ColumnName)
		require.Equal(t, "invalid event type 'agent'", pgErr.Message)
		require.Contains(t, pgErr.Hint, "agent.step.completed")

		err = b.pool.QueryRow(b.ctx, fmt.Sprintf(`SELECT %s.publish('a.b', '[]')`, b.schema)).Scan(&eventID)
		pgErr = requirePgError(t, err)
		require.Equal(t, "payload", pgErr.ColumnName)
		require.Equal(t, "event payload must be a JSON object, not array", pgErr.Message)
		require.Zero(t, countRows(b.ctx, t, b.store, "events"))
	})

	t.Run("InsertInsideProducerTransaction", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		tx := begin(b.ctx, t, b.pool)
		var eventID string
		err := tx.QueryRow(b.ctx, fmt.Sprintf(`SELECT %s.publish('agent.step.completed')`, b.schema)).Scan(&eventID)
		require.NoError(t, err)
		require.NoError(t, tx.Rollback(b.ctx))
		_, err = b.store.EventGet(b.ctx, eventID)
		require.ErrorIs(t, err, outbox.ErrNotFound)
	})
}

func TestPublishIdempotency(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		ctx   context.Context
		store *outbox.Store
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		return &testBundle{ctx: context.Background(), store: outboxtest.Store(t)}
	}
	publishSQL := func(t *testing.T, b *testBundle, exec outbox.Executor, org *string, key string) string {
		t.Helper()
		var eventID string
		err := exec.QueryRow(b.ctx, fmt.Sprintf(`SELECT %s.publish('agent.step.completed', '{"via":"sql"}', organization_id => $1, idempotency_key => $2)`, b.store.Schema()), org, key).Scan(&eventID)
		require.NoError(t, err)
		return eventID
	}

	t.Run("SameKeySameOrganizationIsOneEvent", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		first, err := b.store.Publish(b.ctx, &outbox.PublishParams{Type: "agent.step.completed", OrganizationID: "org-1", IdempotencyKey: "step-1", Payload: json.RawMessage(`{"n":1}`)})
		require.NoError(t, err)
		again, err := b.store.Publish(b.ctx, &outbox.PublishParams{Type: "agent.step.failed", OrganizationID: "org-1", IdempotencyKey: "step-1", Payload: json.RawMessage(`{"n":2}`)})
		require.NoError(t, err)
		require.Equal(t, first.ID, again.ID)
		require.Equal(t, first.Seq, again.Seq)
		require.Equal(t, "agent.step.completed", again.Type, "the first event wins")
		require.JSONEq(t, `{"n":1}`, string(again.Payload))
		require.Equal(t, 1, countRows(b.ctx, t, b.store, "events"))
	})

	t.Run("SQLPublishDeduplicates", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		org := "org-1"
		first := publishSQL(t, b, outboxtest.Pool(t), &org, "k")
		require.Equal(t, first, publishSQL(t, b, outboxtest.Pool(t), &org, "k"))
		require.Equal(t, 1, countRows(b.ctx, t, b.store, "events"))

		// Go and SQL share the rule.
		event, err := b.store.Publish(b.ctx, &outbox.PublishParams{Type: "agent.step.completed", OrganizationID: "org-1", IdempotencyKey: "k"})
		require.NoError(t, err)
		require.Equal(t, first, event.ID)
		require.Equal(t, 1, countRows(b.ctx, t, b.store, "events"))
	})

	t.Run("SameKeyInsideOneTransaction", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		tx := begin(b.ctx, t, outboxtest.Pool(t))
		first, err := b.store.PublishTx(b.ctx, tx, &outbox.PublishParams{Type: "a.b", IdempotencyKey: "k"})
		require.NoError(t, err)
		again, err := b.store.PublishTx(b.ctx, tx, &outbox.PublishParams{Type: "a.b", IdempotencyKey: "k"})
		require.NoError(t, err)
		require.Equal(t, first.ID, again.ID)
		require.NoError(t, tx.Commit(b.ctx))
		require.Equal(t, 1, countRows(b.ctx, t, b.store, "events"))
	})

	t.Run("OtherOrganizationIsAnotherEvent", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		org1, err := b.store.Publish(b.ctx, &outbox.PublishParams{Type: "a.b", OrganizationID: "org-1", IdempotencyKey: "k"})
		require.NoError(t, err)
		org2, err := b.store.Publish(b.ctx, &outbox.PublishParams{Type: "a.b", OrganizationID: "org-2", IdempotencyKey: "k"})
		require.NoError(t, err)
		none, err := b.store.Publish(b.ctx, &outbox.PublishParams{Type: "a.b", IdempotencyKey: "k"})
		require.NoError(t, err)
		require.NotEqual(t, org1.ID, org2.ID)
		require.NotEqual(t, org1.ID, none.ID)
		require.NotEqual(t, org2.ID, none.ID)
		require.Equal(t, 3, countRows(b.ctx, t, b.store, "events"))

		org2SQL := "org-2"
		require.Equal(t, org2.ID, publishSQL(t, b, outboxtest.Pool(t), &org2SQL, "k"))
		require.Equal(t, none.ID, publishSQL(t, b, outboxtest.Pool(t), nil, "k"))
		require.Equal(t, 3, countRows(b.ctx, t, b.store, "events"))
	})

	t.Run("KeyWithoutOrganization", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		first, err := b.store.Publish(b.ctx, &outbox.PublishParams{Type: "a.b", AgentID: "agent-1", IdempotencyKey: "k"})
		require.NoError(t, err)
		again, err := b.store.Publish(b.ctx, &outbox.PublishParams{Type: "a.b", AgentID: "agent-2", IdempotencyKey: "k"})
		require.NoError(t, err)
		require.Equal(t, first.ID, again.ID, "org-less events share one key space")
		require.Equal(t, first.ID, publishSQL(t, b, outboxtest.Pool(t), nil, "k"))
		require.Equal(t, 1, countRows(b.ctx, t, b.store, "events"))
	})

	t.Run("NoKeyNeverDeduplicates", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		params := &outbox.PublishParams{Type: "a.b", OrganizationID: "org-1", Payload: json.RawMessage(`{"same":true}`)}
		first, err := b.store.Publish(b.ctx, params)
		require.NoError(t, err)
		second, err := b.store.Publish(b.ctx, params)
		require.NoError(t, err)
		require.NotEqual(t, first.ID, second.ID)
		require.Equal(t, 2, countRows(b.ctx, t, b.store, "events"))
	})

	t.Run("PlainInsertOfRepeatedKeyIsRefused", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		_, err := b.store.Publish(b.ctx, &outbox.PublishParams{Type: "a.b", OrganizationID: "org-1", IdempotencyKey: "k"})
		require.NoError(t, err)
		_, err = outboxtest.Pool(t).Exec(b.ctx, fmt.Sprintf("INSERT INTO %s.events (type, organization_id, idempotency_key) VALUES ('a.b', 'org-1', 'k')", b.store.Schema()))
		pgErr := requirePgError(t, err)
		require.Equal(t, "23505", pgErr.Code)
		require.Equal(t, "events_idempotency_key", pgErr.ConstraintName)
		require.Equal(t, 1, countRows(b.ctx, t, b.store, "events"))
	})

	t.Run("ConcurrentTransactions", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		pool := outboxtest.NewPool(t, 3)
		params := &outbox.PublishParams{Type: "agent.step.completed", OrganizationID: "org-1", IdempotencyKey: "step-1"}

		tx1 := begin(b.ctx, t, pool)
		tx2 := begin(b.ctx, t, pool)
		var pid1, pid2 uint32
		require.NoError(t, tx1.QueryRow(b.ctx, "SELECT pg_backend_pid()").Scan(&pid1))
		require.NoError(t, tx2.QueryRow(b.ctx, "SELECT pg_backend_pid()").Scan(&pid2))

		first, err := b.store.PublishTx(b.ctx, tx1, params)
		require.NoError(t, err)

		type outcome struct {
			event *outbox.Event
			err   error
		}
		second := make(chan outcome, 1)
		done := make(chan struct{})
		go func() {
			defer close(done)
			event, err := b.store.PublishTx(b.ctx, tx2, params)
			second <- outcome{event, err}
		}()
		// Should an assertion fail, end tx1 so the publish on tx2 can return before
		// tx2 is rolled back.
		t.Cleanup(func() {
			_ = tx1.Rollback(context.WithoutCancel(b.ctx))
			<-done
		})

		// tx2 waits on tx1's uncommitted key.
		require.Eventually(t, func() bool {
			var blocked bool
			err := pool.QueryRow(b.ctx, "SELECT $1::int = ANY(pg_blocking_pids($2))", pid1, pid2).Scan(&blocked)
			return err == nil && blocked
		}, 15*time.Second, 5*time.Millisecond, "the second publish never waited for the first")
		select {
		case got := <-second:
			t.Fatalf("the second publish returned before the first committed: %+v", got)
		default:
		}

		require.NoError(t, tx1.Commit(b.ctx))
		var got outcome
		select {
		case got = <-second:
		case <-time.After(15 * time.Second):
			t.Fatal("the second publish did not return after the first committed")
		}
		require.NoError(t, got.err)
		require.Equal(t, first.ID, got.event.ID)
		require.Equal(t, first.Seq, got.event.Seq)
		require.NoError(t, tx2.Commit(b.ctx))
		require.Equal(t, 1, countRows(b.ctx, t, b.store, "events"))
	})

	t.Run("ConcurrentTransactionRolledBack", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		pool := outboxtest.NewPool(t, 3)
		params := &outbox.PublishParams{Type: "agent.step.completed", IdempotencyKey: "step-1"}

		tx1 := begin(b.ctx, t, pool)
		tx2 := begin(b.ctx, t, pool)
		var pid1, pid2 uint32
		require.NoError(t, tx1.QueryRow(b.ctx, "SELECT pg_backend_pid()").Scan(&pid1))
		require.NoError(t, tx2.QueryRow(b.ctx, "SELECT pg_backend_pid()").Scan(&pid2))
		first, err := b.store.PublishTx(b.ctx, tx1, params)
		require.NoError(t, err)

		type outcome struct {
			event *outbox.Event
			err   error
		}
		second := make(chan outcome, 1)
		done := make(chan struct{})
		go func() {
			defer close(done)
			event, err := b.store.PublishTx(b.ctx, tx2, params)
			second <- outcome{event, err}
		}()
		// Should an assertion fail, end tx1 so the publish on tx2 can return before
		// tx2 is rolled back.
		t.Cleanup(func() {
			_ = tx1.Rollback(context.WithoutCancel(b.ctx))
			<-done
		})
		require.Eventually(t, func() bool {
			var blocked bool
			err := pool.QueryRow(b.ctx, "SELECT $1::int = ANY(pg_blocking_pids($2))", pid1, pid2).Scan(&blocked)
			return err == nil && blocked
		}, 15*time.Second, 5*time.Millisecond)

		// The first producer gives up: the second one's event is the event.
		require.NoError(t, tx1.Rollback(b.ctx))
		var got outcome
		select {
		case got = <-second:
		case <-time.After(15 * time.Second):
			t.Fatal("the second publish did not return after the first rolled back")
		}
		require.NoError(t, got.err)
		require.NotEqual(t, first.ID, got.event.ID)
		require.NoError(t, tx2.Commit(b.ctx))
		event, err := b.store.EventGet(b.ctx, got.event.ID)
		require.NoError(t, err)
		require.Equal(t, "step-1", event.IdempotencyKey)
		require.Equal(t, 1, countRows(b.ctx, t, b.store, "events"))
	})

	t.Run("RepeatableReadConflictIsSerializationFailure", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		pool := outboxtest.NewPool(t, 2)
		params := &outbox.PublishParams{Type: "agent.step.completed", OrganizationID: "org-1", IdempotencyKey: "step-1"}

		tx, err := pool.BeginTx(b.ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
		require.NoError(t, err)
		t.Cleanup(func() { _ = tx.Rollback(context.WithoutCancel(b.ctx)) })
		_, err = tx.Exec(b.ctx, "SELECT 1") // takes the snapshot
		require.NoError(t, err)

		first, err := b.store.Publish(b.ctx, params) // commits after the snapshot
		require.NoError(t, err)

		// The first event is invisible to tx, so it cannot be returned: the producer is
		// told to retry rather than handed a duplicate or a wrong answer.
		_, err = b.store.PublishTx(b.ctx, tx, params)
		require.Equal(t, "40001", requirePgError(t, err).Code)
		require.NoError(t, tx.Rollback(b.ctx))

		// The retry returns the first event.
		tx = begin(b.ctx, t, pool)
		again, err := b.store.PublishTx(b.ctx, tx, params)
		require.NoError(t, err)
		require.Equal(t, first.ID, again.ID)
		require.NoError(t, tx.Commit(b.ctx))
		require.Equal(t, 1, countRows(b.ctx, t, b.store, "events"))
	})
}
