package letta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/secretbox"
	"github.com/outboxd/outboxd/outbox/signing"
)

// CallbackKind is the River job kind the callback trigger inserts.
const CallbackKind = "outboxd.letta_callback"

// callbackAAD binds the sealed callback secret to its purpose.
var callbackAAD = []byte("letta-callbacks")

// ErrCallbackGone is returned when a callback has nothing left to send: the run
// or its callback_url is gone.
var ErrCallbackGone = errors.New("the run or its callback_url no longer exists")

// Callback is one Letta run callback to send.
type Callback struct {
	RunID string
	URL   string
	// Body is Letta's callback body: run_id, status, completed_at, metadata.
	Body []byte
	// Sent is true when an earlier attempt already got a 2xx.
	Sent bool
	// Secrets sign the callback (Standard Webhooks headers).
	Secrets []signing.Secret
}

// LoadCallback reads what a run's callback needs.
func LoadCallback(ctx context.Context, pool *pgxpool.Pool, schema string, keyring *secretbox.Keyring, lettaSchema, runID string) (*Callback, error) {
	c, err := (&Config{Schema: schema, LettaSchema: lettaSchema}).validate()
	if err != nil {
		return nil, err
	}
	var (
		status      string
		url         *string
		completedAt *time.Time
		metadata    *string
		sentCode    *int32
		keyID       *string
		sealed      []byte
	)
	err = pool.QueryRow(ctx, `SELECT r.status, r.callback_url, r.completed_at, r.metadata_::text, r.callback_status_code
		FROM `+c.LettaSchema+`.runs AS r WHERE r.id = $1`, runID).Scan(&status, &url, &completedAt, &metadata, &sentCode)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && url == nil) {
		return nil, ErrCallbackGone
	}
	if err != nil {
		return nil, fmt.Errorf("load run %s: %w", runID, err)
	}
	if err := pool.QueryRow(ctx, `SELECT callback_key_id, callback_secret FROM `+c.Schema+`.letta_install`).Scan(&keyID, &sealed); err != nil {
		return nil, fmt.Errorf("load callback secret: %w", err)
	}
	callback := &Callback{RunID: runID, URL: *url, Sent: sentCode != nil && *sentCode >= 200 && *sentCode < 300}
	if keyID != nil {
		secret, err := keyring.Open(*keyID, sealed, callbackAAD)
		if err != nil {
			return nil, fmt.Errorf("callback secret: %w", err)
		}
		callback.Secrets = []signing.Secret{secret}
	}
	body := map[string]any{"run_id": runID, "status": status, "completed_at": nil, "metadata": json.RawMessage("null")}
	if completedAt != nil {
		// Letta stores naive UTC.
		body["completed_at"] = time.Date(completedAt.Year(), completedAt.Month(), completedAt.Day(), completedAt.Hour(),
			completedAt.Minute(), completedAt.Second(), completedAt.Nanosecond(), time.UTC).Format(time.RFC3339Nano)
	}
	if metadata != nil {
		body["metadata"] = json.RawMessage(*metadata)
	}
	if callback.Body, err = json.Marshal(body); err != nil {
		return nil, err
	}
	return callback, nil
}

// RecordCallback writes an attempt's outcome back to the run, as Letta does:
// callback_sent_at (naive UTC), callback_status_code and callback_error.
func RecordCallback(ctx context.Context, pool *pgxpool.Pool, lettaSchema, runID string, statusCode int, errMsg string) error {
	if !lettaSchemaPattern.MatchString(lettaSchema) {
		return fmt.Errorf("letta schema %q: invalid", lettaSchema)
	}
	var code *int
	if statusCode > 0 {
		code = &statusCode
	}
	var msg *string
	if errMsg != "" {
		msg = &errMsg
	}
	_, err := pool.Exec(ctx, `UPDATE `+lettaSchema+`.runs SET callback_sent_at = now() AT TIME ZONE 'UTC',
		callback_status_code = $2, callback_error = $3 WHERE id = $1`, runID, code, msg)
	if err != nil {
		return fmt.Errorf("record callback of run %s: %w", runID, err)
	}
	return nil
}

// enableCallbacks turns run callbacks on or off; the first time on, it makes and
// seals a signing secret and returns it (shown once).
func enableCallbacks(ctx context.Context, tx pgx.Tx, c *Config) (signing.Secret, error) {
	if !c.Callbacks {
		_, err := tx.Exec(ctx, "UPDATE "+c.Schema+".letta_install SET callbacks = false")
		return nil, err
	}
	if c.Keyring == nil {
		return nil, fmt.Errorf("run callbacks are signed: %w", outbox.ErrNoEncryptionKey)
	}
	var existing *string
	if err := tx.QueryRow(ctx, "SELECT callback_key_id FROM "+c.Schema+".letta_install").Scan(&existing); err != nil {
		return nil, fmt.Errorf("enable callbacks: %w", err)
	}
	if existing != nil {
		_, err := tx.Exec(ctx, "UPDATE "+c.Schema+".letta_install SET callbacks = true")
		return nil, err
	}
	secret, err := signing.GenerateSecret()
	if err != nil {
		return nil, err
	}
	keyID, sealed, err := c.Keyring.Seal(secret, callbackAAD)
	if err != nil {
		return nil, err
	}
	_, err = tx.Exec(ctx, "UPDATE "+c.Schema+".letta_install SET callbacks = true, callback_key_id = $1, callback_secret = $2", keyID, sealed)
	if err != nil {
		return nil, fmt.Errorf("enable callbacks: %w", err)
	}
	return secret, nil
}

// AgentWebhookKind is the River job kind the agent-webhook trigger inserts.
const AgentWebhookKind = "outboxd.letta_agent_webhook"

// AgentWebhook is what an agent's webhook columns say; nil from LoadAgentWebhook
// means the agent is gone or has no webhook_url.
type AgentWebhook struct {
	URL     string
	Secret  string // as Letta stores it; empty for none
	Events  []string
	Enabled bool
	OrgID   string
}

// LoadAgentWebhook reads an agent's webhook columns. webhook_events may be a
// json/jsonb array, a text[] or comma-separated text.
func LoadAgentWebhook(ctx context.Context, pool *pgxpool.Pool, lettaSchema, agentID string) (*AgentWebhook, error) {
	if !lettaSchemaPattern.MatchString(lettaSchema) {
		return nil, fmt.Errorf("letta schema %q: invalid", lettaSchema)
	}
	var (
		url, secret, org *string
		events           []byte
		enabled          *bool
	)
	err := pool.QueryRow(ctx, `SELECT webhook_url, webhook_secret, to_jsonb(webhook_events), webhook_enabled, organization_id
		FROM `+lettaSchema+`.agents WHERE id = $1`, agentID).Scan(&url, &secret, &events, &enabled, &org)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && (url == nil || *url == "")) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load agent %s webhook: %w", agentID, err)
	}
	w := &AgentWebhook{URL: *url, Enabled: enabled == nil || *enabled}
	if secret != nil {
		w.Secret = *secret
	}
	if org != nil {
		w.OrgID = *org
	}
	var list []string
	if json.Unmarshal(events, &list) != nil {
		var text string
		if json.Unmarshal(events, &text) == nil {
			for _, e := range strings.Split(text, ",") {
				if e = strings.TrimSpace(e); e != "" {
					list = append(list, e)
				}
			}
		}
	}
	w.Events = list
	return w, nil
}
